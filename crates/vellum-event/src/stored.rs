//! The stored form: the canonical body prefixed by `index` and `received`.

use crate::event::Wire;
use crate::{Event, EventError, Timestamp};

// The stored form is `{"index":N,"received":"…",` followed by the canonical body after its
// opening brace. These exact bytes are the Merkle leaf; every writer below assembles them
// from the same parts.
const INDEX_KEY: &[u8] = b"{\"index\":";
const RECEIVED_KEY: &[u8] = b",\"received\":\"";
const PREFIX_END: &[u8] = b"\",";

/// `n` in decimal, without allocating (this runs once per stored event).
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    digits.get(i..).unwrap_or_default()
}

/// The parts of a stored event, in order.
fn parts<'a>(digits: &'a [u8], received: &'a str, canonical_body: &'a [u8]) -> [&'a [u8]; 6] {
    [
        INDEX_KEY,
        digits,
        RECEIVED_KEY,
        received.as_bytes(),
        PREFIX_END,
        // The prefix opened the object: drop the body's own opening brace.
        canonical_body.get(1..).unwrap_or_default(),
    ]
}

/// Writes the stored bytes' prefix, `{"index":N,"received":"…",`.
pub fn stored_prefix(out: &mut Vec<u8>, index: u64, received: &str) {
    let mut digits = [0u8; 20];
    let [a, b, c, d, e, _] = parts(decimal(index, &mut digits), received, b"");
    for part in [a, b, c, d, e] {
        out.extend_from_slice(part);
    }
}

/// The length of the stored bytes of an event whose canonical body (see
/// [`crate::Event::canonical_body`]) is `canonical_body`.
pub fn stored_len(index: u64, received: &str, canonical_body: &[u8]) -> usize {
    let mut digits = [0u8; 20];
    parts(decimal(index, &mut digits), received, canonical_body)
        .iter()
        .map(|p| p.len())
        .sum()
}

/// Writes the stored bytes into `out`, which must be exactly [`stored_len`] long (a
/// writer lays out many records first, then fills them in parallel). Returns false, having
/// written nothing, if `out` has another length.
pub fn fill_stored(out: &mut [u8], index: u64, received: &str, canonical_body: &[u8]) -> bool {
    let mut digits = [0u8; 20];
    let parts = parts(decimal(index, &mut digits), received, canonical_body);
    if parts.iter().map(|p| p.len()).sum::<usize>() != out.len() {
        return false;
    }
    let mut rest = out;
    for part in parts {
        let (head, tail) = rest.split_at_mut(part.len());
        head.copy_from_slice(part);
        rest = tail;
    }
    true
}

/// Appends the stored bytes of an event whose canonical body (see
/// [`crate::Event::canonical_body`]) is already made.
pub fn write_stored_body(out: &mut Vec<u8>, index: u64, received: &str, canonical_body: &[u8]) {
    let mut digits = [0u8; 20];
    for part in parts(decimal(index, &mut digits), received, canonical_body) {
        out.extend_from_slice(part);
    }
}

impl crate::Event {
    /// Appends the stored bytes of this event: `{"index":N,"received":"…",` followed by the
    /// members of [`crate::Event::canonical_body`]. These exact bytes are the Merkle leaf.
    pub fn write_stored(&self, out: &mut Vec<u8>, index: u64, received: &str) {
        write_stored_body(out, index, received, &self.canonical_body());
    }
}

/// Whether two events' canonical members (a canonical body without its opening brace, or
/// [`StoredEvent::members_of`]) are one event sent twice: equal but for their `time`, which
/// a sender fills in anew when it builds a retry (and the parser fills in for an event that
/// has none).
///
/// Every member but `details` is canonical, so equal events are equal bytes, which is the
/// quick answer. `details` keeps its keys in the order sent, so a retry whose serializer
/// orders them otherwise differs in bytes: when the bytes differ, both are compared up to
/// the order of object members, at every depth (every value as written), so such a retry
/// is the same event.
pub fn same_event(a: &[u8], b: &[u8]) -> bool {
    let equal_bytes = match (split_time(a), split_time(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    };
    equal_bytes || same_as_json(a, b)
}

/// `a` and `b` (canonical members) as JSON objects without their `time` are one value up to
/// the order of object members. Reached only when the bytes differ: a conflict (refused
/// whatever this answers) or a reordered `details`.
fn same_as_json(a: &[u8], b: &[u8]) -> bool {
    let braced = |members: &[u8]| String::from_utf8([b"{".as_slice(), members].concat()).ok();
    match (braced(a), braced(b)) {
        (Some(a), Some(b)) => crate::reorder::same_up_to_order(&a, &b, "time"),
        _ => false,
    }
}

/// Canonical members without their `time`: what is before it and what is after it. The
/// members begin `"id":"…","time":"…",`; inside the id a quote is escaped, so the first
/// `,"time":"` is the member, and a timestamp holds no quote.
fn split_time(members: &[u8]) -> Option<(&[u8], &[u8])> {
    const TIME_KEY: &[u8] = b",\"time\":\"";
    let at = members
        .windows(TIME_KEY.len())
        .position(|w| w == TIME_KEY)?;
    let value = members.get(at + TIME_KEY.len()..)?;
    let close = value.iter().position(|&b| b == b'"')?;
    Some((members.get(..at)?, value.get(close..)?))
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
            event: wire.into_event(&crate::canonical::Fresh::REAL, crate::event::Input::Stored)?,
        })
    }

    /// The members a stored record holds after its `index` and `received`: the canonical
    /// body it was stored from, without that body's opening brace. Two events are the same
    /// event, wherever and whenever received, when these bytes are equal.
    pub fn members_of(bytes: &[u8]) -> Option<&[u8]> {
        let rest = bytes.strip_prefix(INDEX_KEY)?;
        let digits = rest.iter().position(|b| !b.is_ascii_digit())?;
        let rest = rest.get(digits..)?.strip_prefix(RECEIVED_KEY)?;
        // A timestamp holds no quote: the first one closes it.
        let close = rest.iter().position(|&b| b == b'"')?;
        rest.get(close..)?.strip_prefix(PREFIX_END)
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
    fn members_of_a_stored_event_are_its_canonical_body() {
        let ev = Event::new(Category::Admin, "key.created", Outcome::Success);
        let body = ev.canonical_body();
        for (index, received) in [
            (0, "2026-11-26T16:55:08Z"),
            (12345, "2026-11-26T16:55:08.976526Z"),
        ] {
            let mut bytes = Vec::new();
            write_stored_body(&mut bytes, index, received, &body);
            assert_eq!(StoredEvent::members_of(&bytes), Some(&body[1..]));
        }
        for bad in [
            &b""[..],
            b"{\"index\":1}",
            b"{\"index\":1,\"received\":\"2026",
            b"{\"id\":\"x\"}",
        ] {
            assert_eq!(
                StoredEvent::members_of(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn one_event_sent_twice_differs_at_most_in_its_time() {
        let ev = Event::new(Category::Admin, "key.created", Outcome::Success);
        let mut later = ev.clone();
        later.time = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let mut other = ev.clone();
        other.action = "key.revoked".into();
        let mut quoted = ev.clone();
        quoted.id = "a,\"time\":\"x".parse().unwrap();
        let mut quoted_other = quoted.clone();
        quoted_other.action = "key.revoked".into();
        let m = |e: &Event| e.canonical_body()[1..].to_vec();
        assert!(same_event(&m(&ev), &m(&ev)));
        assert!(same_event(&m(&ev), &m(&later)));
        assert!(!same_event(&m(&ev), &m(&other)));
        assert!(same_event(&m(&quoted), &m(&quoted)));
        assert!(!same_event(&m(&quoted), &m(&quoted_other)));
        assert!(!same_event(&m(&ev), &m(&quoted)));
    }

    #[test]
    fn details_are_compared_up_to_the_order_of_members() {
        let with = |details: &str| {
            let text = format!(
                r#"{{"id":"r-1","category":"data_access","action":"read","outcome":"success","details":{details}}}"#
            );
            let ev = Event::parse(text.as_bytes(), &crate::Limits::default()).unwrap();
            ev.canonical_body()[1..].to_vec()
        };
        let sent = with(r#"{"model":"m","tokens":{"in":3,"out":[1,2]}}"#);
        for same in [
            r#"{"tokens":{"out":[1,2],"in":3},"model":"m"}"#,
            r#"{ "model" : "m", "tokens" : { "in" : 3, "out" : [ 1, 2 ] } }"#,
        ] {
            assert!(same_event(&sent, &with(same)), "{same}");
        }
        for other in [
            r#"{"model":"m","tokens":{"in":3,"out":[2,1]}}"#,
            r#"{"model":"m","tokens":{"in":3.5,"out":[1,2]}}"#,
            r#"{"model":"m","tokens":{"in":3,"out":[1,2]},"extra":null}"#,
            r#"{"model":"m"}"#,
        ] {
            assert!(!same_event(&sent, &with(other)), "{other}");
        }
    }

    /// The limits on what a client may send do not apply to reading the log back: an older
    /// build may have stored `details` deeper than a client may send now.
    #[test]
    fn a_stored_event_deeper_than_clients_may_send_still_reads() {
        let depth = crate::MAX_NESTING * 3;
        let record = format!(
            r#"{{"index":7,"received":"2026-11-27T10:00:00.000000Z","id":"old","time":"2026-11-27T10:00:00.000000Z","category":"admin","action":"x","outcome":"unknown","details":{{"a":{}1{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let stored = StoredEvent::parse(record.as_bytes()).unwrap();
        assert_eq!(stored.index, 7);
        let members = StoredEvent::members_of(record.as_bytes()).unwrap();
        assert_eq!(&stored.event.canonical_body()[1..], members);
        let client = format!("{{{}", &record[record.find(r#""id""#).unwrap()..]);
        assert!(matches!(
            Event::parse(client.as_bytes(), &crate::Limits::default()),
            Err(EventError::Invalid {
                field: "details",
                ..
            })
        ));
    }

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
            let mut d = [0u8; 20];
            assert_eq!(decimal(n, &mut d), n.to_string().as_bytes());
        }
        assert_eq!(stored.event.id, ev.id);
        assert_eq!(stored.event.canonical_body(), body);
    }

    /// The three ways of writing stored bytes agree, at every width of index; a slice of any
    /// other length is refused untouched.
    #[test]
    fn stored_bytes_are_the_same_whichever_writer() {
        let received = "2026-11-26T16:55:08.976526Z";
        let body = Event::new(Category::Admin, "key.created", Outcome::Success).canonical_body();
        for index in [0, 9, 10, 12345, 999_999_999, u64::MAX] {
            let mut appended = Vec::new();
            write_stored_body(&mut appended, index, received, &body);
            let mut prefixed = Vec::new();
            stored_prefix(&mut prefixed, index, received);
            prefixed.extend_from_slice(&body[1..]);
            assert_eq!(prefixed, appended, "{index}");
            assert_eq!(stored_len(index, received, &body), appended.len());
            let mut filled = vec![0u8; appended.len()];
            assert!(fill_stored(&mut filled, index, received, &body));
            assert_eq!(filled, appended, "{index}");
            for wrong in [appended.len() - 1, appended.len() + 1] {
                let mut other = vec![0u8; wrong];
                assert!(!fill_stored(&mut other, index, received, &body));
                assert!(other.iter().all(|&b| b == 0), "nothing written");
            }
        }
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
