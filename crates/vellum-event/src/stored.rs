//! The stored form: the canonical body prefixed by `index` and `received`.

use crate::event::Wire;
use crate::{Event, EventError, Timestamp};

/// Writes the stored bytes of an event: `{"index":N,"received":"…",` followed by the
/// canonical body after its opening brace. These exact bytes are the Merkle leaf.
pub fn stored_prefix(out: &mut Vec<u8>, index: u64, received: &str) {
    out.extend_from_slice(b"{\"index\":");
    push_decimal(out, index);
    out.extend_from_slice(b",\"received\":\"");
    out.extend_from_slice(received.as_bytes());
    out.extend_from_slice(b"\",");
}

/// Appends `n` in decimal without allocating (this runs once per stored event).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends the stored bytes of an event whose canonical body (see
/// [`crate::Event::canonical_body`]) is already made: the prefix, then the body after its
/// opening brace.
pub fn write_stored_body(out: &mut Vec<u8>, index: u64, received: &str, canonical_body: &[u8]) {
    stored_prefix(out, index, received);
    out.extend_from_slice(canonical_body.get(1..).unwrap_or_default());
}

impl crate::Event {
    /// Appends the stored bytes of this event: `{"index":N,"received":"…",` followed by the
    /// members of [`crate::Event::canonical_body`]. These exact bytes are the Merkle leaf.
    pub fn write_stored(&self, out: &mut Vec<u8>, index: u64, received: &str) {
        stored_prefix(out, index, received);
        let start = out.len();
        self.write_canonical_body(out);
        // Drop the body's own opening brace: the prefix opened the object.
        out.remove(start);
    }
}

/// An event as read back from the log.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub index: u64,
    pub received: Timestamp,
    pub event: Event,
}

impl StoredEvent {
    /// Parses stored bytes (as written by the store) back into an event.
    pub fn parse(bytes: &[u8]) -> Result<StoredEvent, EventError> {
        let text = std::str::from_utf8(bytes).map_err(|e| EventError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        let wire = Wire::parse(text)?;
        let index = wire
            .index
            .ok_or(EventError::MissingField("index"))
            .and_then(|raw| {
                raw.get().parse::<u64>().map_err(|_| EventError::WrongType {
                    field: "index".into(),
                    expected: "an unsigned integer",
                })
            })?;
        let received = wire
            .received
            .ok_or(EventError::MissingField("received"))
            .and_then(|raw| {
                serde_json::from_str::<String>(raw.get()).map_err(|_| EventError::WrongType {
                    field: "received".into(),
                    expected: "a string",
                })
            })
            .and_then(|s| Timestamp::parse(&s))?;
        Ok(StoredEvent {
            index,
            received,
            event: wire.into_event()?,
        })
    }

    /// The index a stored record claims, read from its fixed prefix without parsing the rest.
    pub fn index_of(bytes: &[u8]) -> Option<u64> {
        let rest = bytes.strip_prefix(b"{\"index\":")?;
        let end = rest.iter().position(|b| !b.is_ascii_digit())?;
        if end == 0 || (end > 1 && rest[0] == b'0') || rest.get(end) != Some(&b',') {
            return None;
        }
        std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Outcome};

    #[test]
    fn stored_round_trip() {
        let ev = Event::new(Category::Admin, "key.created", Outcome::Success);
        let mut bytes = Vec::new();
        stored_prefix(&mut bytes, 42, "2026-11-26T16:55:08.976526Z");
        let body = ev.canonical_body();
        bytes.extend_from_slice(&body[1..]);
        let stored = StoredEvent::parse(&bytes).unwrap();
        assert_eq!(stored.index, 42);
        assert_eq!(StoredEvent::index_of(&bytes), Some(42));
        let mut again = Vec::new();
        write_stored_body(&mut again, 42, "2026-11-26T16:55:08.976526Z", &body);
        assert_eq!(again, bytes);
        for n in [0, 7, 10, 99, 1234567890123, u64::MAX] {
            let mut d = Vec::new();
            push_decimal(&mut d, n);
            assert_eq!(d, n.to_string().as_bytes());
        }
        assert_eq!(stored.event.id, ev.id);
        assert_eq!(stored.event.canonical_body(), body);
    }

    #[test]
    fn index_prefix_is_strict() {
        assert_eq!(StoredEvent::index_of(b"{\"index\":0,"), Some(0));
        assert_eq!(StoredEvent::index_of(b"{\"index\":01,"), None);
        assert_eq!(StoredEvent::index_of(b"{\"index\":,"), None);
        assert_eq!(StoredEvent::index_of(b"{\"index\":1}"), None);
        assert_eq!(StoredEvent::index_of(b"{\"idx\":1,"), None);
    }
}
