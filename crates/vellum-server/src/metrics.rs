//! Prometheus text exposition: the store's counters and histograms, and per-route request
//! latency by status, rendered on demand.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use vellum_store::{Histogram, Store};

const LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), Histogram>>,
    pub auth_failures: AtomicU64,
    pub brute_force_flags: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut map) = self.requests.lock() {
            map.entry((route.to_string(), status))
                .or_insert_with(|| Histogram::new(LATENCY_BOUNDS))
                .observe(seconds);
        }
    }

    /// The metrics text; `index_lag` is how many committed events the query index has not
    /// taken in yet (`None` when it could not be read).
    pub fn render(&self, store: &Store, index_lag: Option<u64>) -> String {
        let mut out = String::with_capacity(8192);
        let s = store.stats();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "vellum_events_appended_total",
            "Events durably appended.",
            s.events_appended.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vellum_bytes_appended_total",
            "Bytes of records durably appended.",
            s.bytes_appended.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vellum_duplicates_total",
            "Events not stored again because their id was already in the log.",
            s.duplicates.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vellum_commits_total",
            "Group commits (one fdatasync each).",
            s.commits.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vellum_checkpoints_total",
            "Checkpoints signed.",
            s.checkpoints.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vellum_write_errors_total",
            "Failed writes of records, derived state or checkpoints.",
            s.write_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vellum_auth_failures_total",
            "Failed authentications.",
            self.auth_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vellum_brute_force_suspected_total",
            "Addresses flagged for repeated authentication failures.",
            self.brute_force_flags.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP vellum_tree_size Events in the log.\n# TYPE vellum_tree_size gauge\nvellum_tree_size {}",
            store.tree_size()
        );
        if let Some(lag) = index_lag {
            let _ = writeln!(
                out,
                "# HELP vellum_index_lag_events Committed events not yet in the query index (queries scan them).\n# TYPE vellum_index_lag_events gauge\nvellum_index_lag_events {lag}"
            );
        }
        histogram(
            &mut out,
            "vellum_fsync_seconds",
            "Latency of each segment fdatasync.",
            "",
            &s.fsync_seconds,
        );
        histogram(
            &mut out,
            "vellum_commit_events",
            "Events per group commit.",
            "",
            &s.commit_events,
        );
        let _ = writeln!(
            out,
            "# HELP vellum_http_request_seconds HTTP request latency by route and status.\n# TYPE vellum_http_request_seconds histogram"
        );
        if let Ok(map) = self.requests.lock() {
            for ((route, status), h) in map.iter() {
                let labels = format!("route=\"{}\",status=\"{status}\"", escape(route));
                series(&mut out, "vellum_http_request_seconds", &labels, h);
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, help: &str, labels: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    series(out, name, labels, h);
}

fn series(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let (buckets, sum, count) = h.snapshot();
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, c) in buckets {
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            le.to_string()
        };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {c}");
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(
        out,
        "{name}_sum{braces} {sum}\n{name}_count{braces} {count}"
    );
}
