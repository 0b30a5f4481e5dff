//! Vellum's audit event model.
//!
//! This crate owns the shape of an audit event: the six categories, the native JSON shape,
//! the chapter's legacy shape (`timestamp, event_type, user, details, source_ip`) accepted on
//! ingest, validation with errors that say which line, which field and why, and the canonical
//! bytes an event is stored as.
//!
//! It does not store, hash or sign anything: the store prefixes the canonical body with the
//! event's `index` and `received` time and hashes those exact bytes as the Merkle leaf.
//!
//! The stored form of an event is one JSON object whose keys come in a fixed order:
//! `{"index":N,"received":"…","id":"…","time":"…","category":"…","action":"…","outcome":"…",
//! "actor":{…},"source":{…},"target":{…},"request":{…},"reason":"…","details":{…}}` — the
//! optional members only when present. [`Event::canonical_body`] produces everything after
//! `index` and `received`.

mod batch;
pub mod canonical;
mod error;
mod event;
mod filter;
mod object;
mod reorder;
mod stored;
mod timestamp;

pub use batch::{BodyFormat, check_batch, parse_batch, parse_batch_canonical, parse_batch_map};
pub use canonical::Canonical;
pub use error::{BatchError, EventError};
pub use event::{Category, Event, EventId, Limits, MAX_NESTING, Outcome, canonical_ip};
pub use filter::{Filter, FilterText};
pub use object::JsonObject;
pub use stored::{
    StoredEvent, fill_stored, same_event, stored_len, stored_prefix, write_stored_body,
};
pub use timestamp::Timestamp;
