//! What every request handler shares: the store, a reader, the keys, limits, metrics.

use std::sync::{Arc, RwLock};

use serde_json::json;
use tokio::sync::Semaphore;
use vellum_event::{Category, Event, Limits, Outcome};
use vellum_store::{ApiKey, ApiKeys, LogReader, NewKey, Revocation, Role, Store};

use crate::auth::BruteForce;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;

pub type SharedState = Arc<AppState>;

#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub reader: LogReader,
    /// The query index, kept up to date by a background thread (see `lib.rs`).
    pub index: vellum_index::Index,
    pub keys: KeyRing,
    pub config: Config,
    pub limits: Limits,
    pub ingest_permits: Semaphore,
    pub brute: BruteForce,
    pub metrics: Metrics,
}

impl AppState {
    /// Whether any ingest request is being parsed or appended right now.
    pub fn ingest_in_flight(&self) -> bool {
        self.ingest_permits.available_permits() < self.config.server.max_concurrent_ingest
    }

    pub fn new(store: Store, config: Config) -> Result<Self, crate::ServeError> {
        let dir = store.layout().root().to_path_buf();
        let reader = LogReader::open(&dir)?;
        let index = vellum_index::Index::open(store.layout())?;
        Ok(Self {
            index,
            keys: KeyRing::load(ApiKeys::new(&dir))?,
            limits: Limits {
                max_event_bytes: config.store.max_event_bytes,
            },
            ingest_permits: Semaphore::new(config.server.max_concurrent_ingest),
            brute: BruteForce::new(&config.auth),
            metrics: Metrics::default(),
            store,
            reader,
            config,
        })
    }

    /// Records an audit event without waiting for it to be durable; it is ordered before
    /// anything this request appends afterwards, so it is durable by the time they are.
    pub fn audit(&self, event: Event) {
        if let Err(e) = self.store.append_detached(vec![event]) {
            tracing::error!(error = %e, "could not queue an audit event");
        }
    }

    /// Records an audit event and waits until it is durable: a request whose audit record
    /// cannot be written is refused (fail closed).
    pub async fn audit_durably(&self, event: Event) -> AppResult<()> {
        self.store
            .append_async(vec![event])
            .await
            .map(|_| ())
            .map_err(AppError::from)
    }
}

/// The API keys, cached in memory; every change goes to `keys.json` first.
#[derive(Debug)]
pub struct KeyRing {
    file: ApiKeys,
    keys: RwLock<Vec<ApiKey>>,
}

impl KeyRing {
    pub fn load(file: ApiKeys) -> Result<Self, vellum_store::StoreError> {
        let keys = file.list()?;
        Ok(Self {
            file,
            keys: RwLock::new(keys),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.read().map(|k| k.is_empty()).unwrap_or(true)
    }

    pub fn lookup(&self, token: &str) -> Lookup {
        let keys = match self.keys.read() {
            Ok(k) => k,
            Err(_) => return Lookup::Unknown,
        };
        match vellum_store::lookup(&keys, token) {
            vellum_store::Lookup::Valid(k) => Lookup::Valid(k.clone()),
            vellum_store::Lookup::Revoked(k) => Lookup::Revoked(k.clone()),
            vellum_store::Lookup::Unknown => Lookup::Unknown,
        }
    }

    pub fn list(&self) -> Vec<ApiKey> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    fn reload(&self) -> Result<(), vellum_store::StoreError> {
        let fresh = self.file.list()?;
        if let Ok(mut k) = self.keys.write() {
            *k = fresh;
        }
        Ok(())
    }

    pub fn create(&self, name: &str, role: Role) -> Result<NewKey, vellum_store::StoreError> {
        let new = self.file.create(name, role)?;
        self.reload()?;
        Ok(new)
    }

    pub fn revoke(&self, id: &str) -> Result<Revocation, vellum_store::StoreError> {
        let done = self.file.revoke(id)?;
        self.reload()?;
        Ok(done)
    }

    /// See [`ApiKeys::revocation_recorded`].
    pub fn revocation_recorded(&self, id: &str) -> Result<(), vellum_store::StoreError> {
        self.file.revocation_recorded(id)?;
        self.reload()
    }
}

/// What a presented token is.
#[derive(Debug, Clone)]
pub enum Lookup {
    Valid(ApiKey),
    Revoked(ApiKey),
    Unknown,
}

/// A read of the audit log (events, a receipt or a proof): `data_access`/`audit_log.read`,
/// with what was read in its details.
pub fn log_read(details: serde_json::Value) -> Event {
    Event::new(Category::DataAccess, "audit_log.read", Outcome::Success).with_details(details)
}

/// An admin event about a key.
pub fn key_event(action: &str, key: &ApiKey, actor: Option<&ApiKey>) -> Event {
    let mut ev = Event::new(Category::Admin, action, Outcome::Success)
        .with_details(json!({"key_id": key.id, "name": key.name, "role": key.role.as_str()}));
    ev.target = serde_json::from_value(json!({"type": "api_key", "name": key.id})).ok();
    if let Some(a) = actor {
        ev.actor = serde_json::from_value(json!({"user": a.name, "key_id": a.id})).ok();
    }
    ev
}
