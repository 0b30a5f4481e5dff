//! Errors for event parsing, grouped by what the caller got wrong.

use thiserror::Error;

/// Why one event was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    #[error("event is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("event is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("an event must be a JSON object")]
    NotAnObject,
    #[error(
        "the event starts with a byte order mark (U+FEFF): save the input as UTF-8 without one"
    )]
    ByteOrderMark,
    /// A member of the right JSON type that does not decode (a string with a lone UTF-16
    /// surrogate escape, say).
    #[error("field `{field}` does not decode: {reason}")]
    Undecodable { field: String, reason: String },
    #[error(
        "field `{0}` belongs to the chapter's shape (timestamp, event_type, user, details, source_ip), not to a native event: send one shape or the other"
    )]
    MixedShapes(&'static str),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("unknown field `{0}` (custom data goes in `details`)")]
    UnknownField(String),
    #[error(
        "unknown category `{0}`: expected one of authentication, api_request, data_access, admin, security, malfunction"
    )]
    UnknownCategory(String),
    #[error("unknown outcome `{0}`: expected success, failure or unknown")]
    UnknownOutcome(String),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("invalid time `{value}`: {reason}")]
    InvalidTime { value: String, reason: String },
    #[error("invalid IP address `{0}` in `source.ip`")]
    InvalidIp(String),
}

/// Why a batch (JSON array or NDJSON body) was rejected; nothing of it is stored.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// `item` is 1-based: the NDJSON line number or the array element's position.
    #[error("{kind} {item}: {error}")]
    Item {
        kind: &'static str,
        item: usize,
        error: EventError,
    },
    #[error("the body is empty: no events")]
    Empty,
    #[error("{0}")]
    Body(EventError),
}

impl BatchError {
    /// The event error behind this batch error.
    pub fn event_error(&self) -> Option<&EventError> {
        match self {
            BatchError::Item { error, .. } | BatchError::Body(error) => Some(error),
            BatchError::Empty => None,
        }
    }
}
