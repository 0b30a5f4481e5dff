//! `vellum serve`: the audit server.
//!
//! Owns the HTTP API of the contract (ingest, query, receipts, proofs, keys, health,
//! metrics), API-key authentication with roles, and the server's own audit trail: every
//! authentication, every read of the log, every key change, start and stop are events in
//! the same log. It does not touch the data directory except through `vellum-store`, and
//! it answers ingest only after the store says the events are durable.

pub mod auth;
pub mod config;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod routes;
pub mod state;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vellum_event::{Category, Event, Outcome};
use vellum_store::{Role, Store};

pub use config::{Config, ConfigError, Overrides};
pub use routes::router;
pub use state::{AppState, SharedState};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] vellum_store::StoreError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("query index: {0}")]
    Index(#[from] vellum_index::IndexError),
}

/// Opens the store in `data`, prepares the state and, with no API keys yet, creates an
/// admin key and returns its token (to be shown once).
pub fn prepare(data: &Path, config: Config) -> Result<(SharedState, Option<String>), ServeError> {
    let store = Store::open(data, config.store_options())?;
    let recovered = store.recovered();
    if let Some((path, at, bytes)) = &recovered.torn_tail {
        let kept = match (&recovered.torn_tail_kept, &recovered.torn_tail_not_kept) {
            (Some(k), _) => k.display().to_string(),
            (None, Some(why)) => format!("not kept: {why}"),
            (None, None) => String::new(),
        };
        tracing::warn!(file = %path.display(), offset = at, bytes, kept, "cut the bytes after the last intact record (a crash leaves only unacknowledged records there)");
    }
    let state = Arc::new(AppState::new(store, config)?);
    let mut token = None;
    if state.keys.is_empty() {
        let new = state.keys.create("initial-admin", Role::Admin)?;
        let ev = state::key_event("key.created", &new.key, None)
            .with_details(json!({"key_id": new.key.id, "name": new.key.name, "role": "admin", "reason": "first start: no keys"}));
        state.store.append(vec![ev])?;
        token = Some(new.token);
    }
    Ok((state, token))
}

/// Runs the server until `shutdown` resolves: records start and stop, applies retention
/// periodically, drains in-flight requests, and closes the store (final checkpoint).
pub async fn run(
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let cfg = state.config.clone();
    let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(c), Some(k)) => Some(listener::tls_acceptor(c, k).map_err(ServeError::Tls)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.server.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: cfg.server.listen,
        source,
    })?;
    let started =
        Event::new(Category::Admin, "server.started", Outcome::Success).with_details(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "listen": addr.to_string(),
            "tls": tls.is_some(),
            "config": {
                "max_body_bytes": cfg.server.max_body_bytes,
                "max_concurrent_ingest": cfg.server.max_concurrent_ingest,
                "retention_days": cfg.retention.max_age_days,
                "legal_hold": cfg.retention.legal_hold,
                "checkpoint_interval_ms": cfg.store.checkpoint_interval_ms,
                "brute_force_threshold": cfg.auth.brute_force_threshold,
            },
        }));
    state.store.append_async(vec![started]).await?;
    tracing::info!(%addr, tls = tls.is_some(), "listening");
    println!(
        "vellum: audit API on {}://{addr}",
        if tls.is_some() { "https" } else { "http" }
    );

    let retention = tokio::spawn(retention_loop(state.clone()));
    let stop_indexer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let indexer = {
        let state = state.clone();
        let stop = stop_indexer.clone();
        std::thread::Builder::new()
            .name("vellum-indexer".into())
            .spawn(move || {
                lower_priority(INDEXER_NICENESS);
                index_loop(&state, &stop)
            })
            .ok()
    };
    listener::serve(
        listener,
        tls,
        routes::router(state.clone()),
        shutdown,
        Duration::from_secs(cfg.server.shutdown_grace_seconds),
    )
    .await;
    retention.abort();
    stop_indexer.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(t) = indexer {
        let _ = t.join();
    }
    let stopped = Event::new(Category::Admin, "server.stopped", Outcome::Success)
        .with_details(json!({"reason": "shutdown signal"}));
    state.store.append_async(vec![stopped]).await?;
    state.store.checkpoint_async().await?;
    Ok(())
}

/// How much lower the indexer's scheduling priority is than the rest of the server's
/// (`nice` steps). The index is derived and queries read the unindexed tail directly, so
/// when ingest and indexing both want the CPUs, ingest goes first and the index catches up
/// when ingest slows down.
const INDEXER_NICENESS: i32 = 10;

/// Lowers the calling thread's priority by `steps` nice levels (Linux applies `nice` per
/// thread). Failing is harmless: the thread keeps the server's priority.
fn lower_priority(steps: i32) {
    let me = Some(rustix::thread::gettid());
    let result = rustix::process::getpriority_process(me)
        .and_then(|now| rustix::process::setpriority_process(me, (now + steps).min(19)));
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not lower the indexer's priority");
    }
}

/// Keeps the query index up to date with the log, in batches, until told to stop.
/// A batch is up to `vellum_index::BATCH` events, one write transaction; a stop abandons
/// the batch being read (the next start indexes it again), or waits for the one being
/// written.
fn index_loop(state: &SharedState, stop: &std::sync::atomic::AtomicBool) {
    let stopping = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let deferral = Deferral {
        max_lag: state.config.server.query_max_scan,
        max_wait: Duration::from_secs(state.config.server.index_defer_max_seconds),
    };
    let mut caught_up_at = Instant::now();
    while !stopping() {
        let lag = match index_lag(state) {
            Ok(lag) => lag,
            Err(e) => {
                tracing::error!(error = %e, "reading the index's progress failed");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if lag == 0 {
            caught_up_at = Instant::now();
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if deferral.wait(state.ingest_in_flight(), lag, caught_up_at.elapsed()) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match state
            .index
            .catch_up_until(&state.reader, vellum_index::BATCH, stopping)
        {
            Ok(0) => std::thread::sleep(Duration::from_millis(100)),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "indexing failed; queries scan the unindexed part");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// When the indexer steps aside: while ingest requests are in flight it waits rather than
/// take CPU from them (an append is answered only once its batch is parsed and synced; the
/// index is derived and can follow later), as long as it is fewer than `max_lag` events
/// behind (what one query page may scan of the unindexed tail, `query_max_scan`) and has
/// not been behind for `max_wait` (`index_defer_max_seconds`). Past either bound it indexes
/// whatever the load.
#[derive(Debug, Clone, Copy)]
struct Deferral {
    max_lag: u64,
    max_wait: Duration,
}

impl Deferral {
    fn wait(&self, ingest_in_flight: bool, lag: u64, behind_for: Duration) -> bool {
        ingest_in_flight && lag < self.max_lag && behind_for < self.max_wait
    }
}

/// Events committed to the log but not yet in the query index.
pub(crate) fn index_lag(state: &SharedState) -> Result<u64, String> {
    // The writer's own count: no directory listing (this runs every 20 ms while deferring).
    let size = state.store.tree_size();
    let first = state.reader.first_index().map_err(|e| e.to_string())?;
    let indexed = state.index.indexed().map_err(|e| e.to_string())?;
    Ok(size.saturating_sub(indexed.max(first)))
}

async fn retention_loop(state: SharedState) {
    let every = Duration::from_secs(state.config.retention.check_interval_minutes.max(1) * 60);
    loop {
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || store.prune(vellum_event::Timestamp::now())).await
        {
            Ok(Ok(r)) => {
                if let Some(p) = r.pruned {
                    tracing::info!(
                        first = p.first_index,
                        end = p.end_index,
                        "retention pruned segments"
                    );
                }
                if r.held_segments > 0 {
                    tracing::info!(held = r.held_segments, "legal hold: expired segments kept");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
            Err(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {},
                _ = i.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexer_steps_aside_for_ingest_within_bounds() {
        let d = Deferral {
            max_lag: 1_000_000,
            max_wait: Duration::from_secs(10),
        };
        let secs = Duration::from_secs;
        // (ingest in flight, lag, behind for) -> wait?
        let cases = [
            ((true, 1, secs(0)), true),
            ((true, 999_999, secs(9)), true),
            ((false, 1, secs(0)), false),
            ((false, 999_999, secs(9)), false),
            ((true, 1_000_000, secs(0)), false),
            ((true, 5_000_000, secs(0)), false),
            ((true, 1, secs(10)), false),
            ((true, 1, secs(60)), false),
        ];
        for ((busy, lag, behind), want) in cases {
            assert_eq!(d.wait(busy, lag, behind), want, "{busy} {lag} {behind:?}");
        }
        // `index_defer_max_seconds = 0`: never steps aside.
        let never = Deferral {
            max_wait: Duration::ZERO,
            ..d
        };
        assert!(!never.wait(true, 1, secs(0)));
    }
}
