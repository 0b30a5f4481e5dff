//! Configuration, parsed in two steps: the raw `vellum.toml` (unknown keys rejected), then
//! environment overrides and flags on top. Every option is documented in
//! `vellum.example.toml` at the repository root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value}: {message}")]
    Env {
        name: &'static str,
        value: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub retention: RetentionConfig,
    pub auth: AuthConfig,
}

/// `[server]`: the HTTP listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the audit API listens on.
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Ingest requests handled at once; more get 429 with Retry-After.
    pub max_concurrent_ingest: usize,
    /// Most candidates (index postings checked or events read) a query examines per page
    /// before it returns a cursor.
    pub query_max_scan: u64,
    /// Longest the query index may stay behind the log (seconds) while it gives way to
    /// ingest; 0: it never gives way.
    pub index_defer_max_seconds: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_grace_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 16 << 20,
            max_concurrent_ingest: 64,
            query_max_scan: 1_000_000,
            index_defer_max_seconds: 10,
            shutdown_grace_seconds: 30,
        }
    }
}

/// `[store]`: the embedded event store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Origin and checkpoint key name of a new log (default `vellum/<hostname>`).
    pub origin: Option<String>,
    /// Seal a segment at this size.
    pub segment_max_mib: u64,
    /// …or at this age.
    pub segment_max_age_hours: u64,
    /// Sign a checkpoint at least this often while events arrive.
    pub checkpoint_interval_ms: u64,
    /// How many recent event ids are remembered for idempotency.
    pub dedupe_window: usize,
    /// Largest event, in bytes.
    pub max_event_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            origin: None,
            segment_max_mib: 64,
            segment_max_age_hours: 24,
            checkpoint_interval_ms: 2000,
            dedupe_window: 1_000_000,
            max_event_bytes: 1 << 20,
        }
    }
}

/// `[retention]`: when old segments are deleted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete sealed segments whose newest event is older than this.
    pub max_age_days: u64,
    /// Delete nothing, whatever its age.
    pub legal_hold: bool,
    /// How often retention runs.
    pub check_interval_minutes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age_days: 90,
            legal_hold: false,
            check_interval_minutes: 60,
        }
    }
}

/// `[auth]`: slowing down repeated authentication failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Failures from one address within the window before responses slow down and a
    /// `security`/`brute_force.suspected` event is raised.
    pub brute_force_threshold: u32,
    pub brute_force_window_seconds: u64,
    /// The longest a failing response is delayed.
    pub max_delay_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            brute_force_threshold: 10,
            brute_force_window_seconds: 60,
            max_delay_ms: 5000,
        }
    }
}

/// Flags given on the command line; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub origin: Option<String>,
    pub segment_max_mib: Option<u64>,
    pub max_event_bytes: Option<usize>,
    pub dedupe_window: Option<usize>,
}

impl Config {
    /// Reads `path` (if given), applies `VELLUM_*` environment overrides, then flags.
    pub fn load(path: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => Self::parse_file(p)?,
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        if let Some(l) = flags.listen {
            config.server.listen = l;
        }
        if let Some(o) = &flags.origin {
            config.store.origin = Some(o.clone());
        }
        let store = &mut config.store;
        store.segment_max_mib = flags.segment_max_mib.unwrap_or(store.segment_max_mib);
        store.max_event_bytes = flags.max_event_bytes.unwrap_or(store.max_event_bytes);
        store.dedupe_window = flags.dedupe_window.unwrap_or(store.dedupe_window);
        config.check()?;
        Ok(config)
    }

    pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_str(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse_str(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Environment overrides: `VELLUM_LISTEN`, `VELLUM_TLS_CERT`, `VELLUM_TLS_KEY`,
    /// `VELLUM_ORIGIN`, `VELLUM_RETENTION_DAYS`, `VELLUM_LEGAL_HOLD`, `VELLUM_MAX_BODY_BYTES`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                value: value.to_string(),
                message: e.to_string(),
            })
        }
        if let Some(v) = get("VELLUM_LISTEN") {
            self.server.listen = parse("VELLUM_LISTEN", &v)?;
        }
        if let Some(v) = get("VELLUM_TLS_CERT") {
            self.server.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = get("VELLUM_TLS_KEY") {
            self.server.tls_key = Some(PathBuf::from(v));
        }
        if let Some(v) = get("VELLUM_ORIGIN") {
            self.store.origin = Some(v);
        }
        if let Some(v) = get("VELLUM_RETENTION_DAYS") {
            self.retention.max_age_days = parse("VELLUM_RETENTION_DAYS", &v)?;
        }
        if let Some(v) = get("VELLUM_LEGAL_HOLD") {
            self.retention.legal_hold = parse("VELLUM_LEGAL_HOLD", &v)?;
        }
        if let Some(v) = get("VELLUM_MAX_BODY_BYTES") {
            self.server.max_body_bytes = parse("VELLUM_MAX_BODY_BYTES", &v)?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "server.tls_cert and server.tls_key must be given together".into(),
            ));
        }
        if s.max_body_bytes == 0 || s.max_concurrent_ingest == 0 || s.query_max_scan == 0 {
            return Err(ConfigError::Invalid(
                "server.max_body_bytes, max_concurrent_ingest and query_max_scan must be positive"
                    .into(),
            ));
        }
        let largest = vellum_event::Limits::LARGEST_EVENT_BYTES;
        if self.store.max_event_bytes == 0 || self.store.max_event_bytes > largest {
            return Err(ConfigError::Invalid(format!(
                "store.max_event_bytes must be 1..={largest}"
            )));
        }
        if self.store.segment_max_mib == 0 || self.store.checkpoint_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "store.segment_max_mib and checkpoint_interval_ms must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The store options this configuration asks for.
    pub fn store_options(&self) -> vellum_store::Options {
        let st = &self.store;
        vellum_store::Options {
            create: true,
            origin: st.origin.clone(),
            segment_max_bytes: st.segment_max_mib << 20,
            segment_max_age: Duration::from_secs(st.segment_max_age_hours.max(1) * 3600),
            checkpoint_interval: Duration::from_millis(st.checkpoint_interval_ms),
            dedupe_window: st.dedupe_window,
            queue_depth: 4096,
            retention: vellum_store::Retention {
                max_age: Duration::from_secs(self.retention.max_age_days.saturating_mul(86400)),
                legal_hold: self.retention.legal_hold,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let text = include_str!("../../../vellum.example.toml");
        let c = Config::parse_str(text).unwrap();
        let d = Config::default();
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.server.max_body_bytes, d.server.max_body_bytes);
        assert_eq!(c.store.segment_max_mib, d.store.segment_max_mib);
        assert_eq!(c.retention.max_age_days, d.retention.max_age_days);
        assert_eq!(c.auth.brute_force_threshold, d.auth.brute_force_threshold);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        for bad in [
            "[server]\nlisen = \"127.0.0.1:1\"",
            "[nope]\n",
            "[server]\nlisten = \"not an address\"",
            "[retention]\nmax_age_days = -1",
            "[store]\nsegment_max_mib = \"big\"",
        ] {
            assert!(Config::parse_str(bad).is_err(), "{bad}");
        }
        let mut c = Config::default();
        c.server.tls_cert = Some("cert.pem".into());
        assert!(c.check().is_err());
    }

    #[test]
    fn flags_override_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vellum.toml");
        std::fs::write(
            &path,
            "[store]\nsegment_max_mib = 8\nmax_event_bytes = 4096\ndedupe_window = 10",
        )
        .unwrap();
        let file_only = Config::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(file_only.store.segment_max_mib, 8);
        assert_eq!(file_only.store.dedupe_window, 10);
        let flags = Overrides {
            segment_max_mib: Some(2),
            max_event_bytes: Some(2048),
            dedupe_window: Some(5),
            ..Overrides::default()
        };
        let c = Config::load(Some(&path), &flags).unwrap();
        assert_eq!(
            (
                c.store.segment_max_mib,
                c.store.max_event_bytes,
                c.store.dedupe_window
            ),
            (2, 2048, 5)
        );
        let zero = Overrides {
            segment_max_mib: Some(0),
            ..Overrides::default()
        };
        assert!(Config::load(Some(&path), &zero).is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c = Config::parse_str("[server]\nlisten = \"127.0.0.1:1\"").unwrap();
        c.apply_env(|n| (n == "VELLUM_LISTEN").then(|| "127.0.0.1:2".to_string()))
            .unwrap();
        assert_eq!(c.server.listen.port(), 2);
        let err = c
            .apply_env(|n| (n == "VELLUM_LEGAL_HOLD").then(|| "maybe".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("VELLUM_LEGAL_HOLD"));
    }
}
