//! What the index keeps of an event: the fields a query filters on, read from the stored
//! bytes without building the whole event, and their fixed-size encoding in posting values.
//!
//! [`Fields::read`] must agree with [`StoredEvent::parse`] on every event that parses: the
//! quick path reads only the six members it needs (skipping `details`, `target`, …) and
//! falls back to the full parse whenever the bytes are not in the shape it expects. An event
//! the quick path accepts but the full parse rejects is harmless: the index only ever
//! narrows candidates, and every event returned is checked with the full parse.
//!
//! A posting's value is [`Encoded`]: category and outcome in one byte, the event time in
//! microseconds, and 32-bit hashes of action, user and ip. Equal hashes say "maybe" (the
//! event is read and checked); different ones say "no" for certain.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use vellum_event::{Category, Filter, Outcome, StoredEvent, Timestamp, canonical_ip};

/// A posting's value: `category | outcome << 4`, time (µs, i64 BE), action, user, ip hashes.
pub(crate) type Encoded = [u8; ENCODED_LEN];
pub(crate) const ENCODED_LEN: usize = 21;

/// Field tags, mixed into value hashes so equal strings of different fields differ.
pub(crate) const TAG_CATEGORY: u8 = 1;
pub(crate) const TAG_ACTION: u8 = 2;
pub(crate) const TAG_USER: u8 = 3;
pub(crate) const TAG_IP: u8 = 4;

/// The filterable fields of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub category: Category,
    pub action: Cow<'a, str>,
    pub outcome: Outcome,
    pub user: Option<Cow<'a, str>>,
    pub ip: Option<Cow<'a, str>>,
    /// Event time, microseconds since the Unix epoch.
    pub time: i64,
}

/// The members of a stored event the index reads; the others are skipped, not built.
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    #[serde(borrow)]
    category: Option<&'a RawValue>,
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    #[serde(borrow)]
    outcome: Option<&'a RawValue>,
    #[serde(borrow)]
    actor: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Actor<'a> {
    #[serde(borrow)]
    user: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow)]
    ip: Option<&'a RawValue>,
}

impl<'a> Fields<'a> {
    /// The fields of stored bytes; `None` when the event does not parse.
    pub fn read(bytes: &'a [u8]) -> Option<Fields<'a>> {
        Self::quick(bytes).or_else(|| Self::full(bytes))
    }

    /// Reads only the needed members; `None` for anything unexpected (the full parse decides).
    fn quick(bytes: &'a [u8]) -> Option<Fields<'a>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let m: Members<'a> = serde_json::from_str(text).ok()?;
        let category = string(present(m.category)?)?.parse().ok()?;
        let action = string(present(m.action)?)?;
        let outcome = match present(m.outcome) {
            None => Outcome::Unknown,
            Some(raw) => string(raw)?.parse().ok()?,
        };
        let time = micros(Timestamp::parse(&string(present(m.time)?)?).ok()?)?;
        let user = match present(m.actor) {
            None => None,
            Some(raw) => present(serde_json::from_str::<Actor<'a>>(raw.get()).ok()?.user)
                .map(string)
                .transpose_opt()?,
        };
        let ip = match present(m.source) {
            None => None,
            Some(raw) => present(serde_json::from_str::<Source<'a>>(raw.get()).ok()?.ip)
                .map(string)
                .transpose_opt()?,
        };
        // Stored before its canonical text changed (an IPv4-mapped address, stored in its
        // IPv6 form before 2026-11-27): hashed as the filter's text is, or left to the full
        // parse if it is no address at all.
        let ip = match ip {
            Some(text) => Some(match canonical_ip(&text).ok()? {
                Cow::Borrowed(_) => text,
                Cow::Owned(c) => Cow::Owned(c),
            }),
            None => None,
        };
        Some(Fields {
            category,
            action,
            outcome,
            user,
            ip,
            time,
        })
    }

    /// Through the event model's own parse (slow, but the reference).
    fn full(bytes: &[u8]) -> Option<Fields<'static>> {
        let e = StoredEvent::parse(bytes).ok()?.event;
        Some(Fields {
            category: e.category,
            outcome: e.outcome,
            user: e.user().map(Cow::Owned),
            ip: e.ip().map(Cow::Owned),
            time: micros(e.time)?,
            action: Cow::Owned(e.action),
        })
    }

    /// Whether `filter` can hold for these fields: exact, like [`Filter::matches`], except
    /// that a time bound outside `i64` microseconds (none is: years 1 to 9999) rules nothing
    /// out.
    pub fn matches(&self, filter: &Filter) -> bool {
        filter.category.is_none_or(|c| c == self.category)
            && filter.action.as_deref().is_none_or(|a| a == self.action)
            && filter.outcome.is_none_or(|o| o == self.outcome)
            && filter
                .user
                .as_deref()
                .is_none_or(|u| Some(u) == self.user.as_deref())
            && filter
                .ip
                .as_deref()
                .is_none_or(|i| Some(i) == self.ip.as_deref())
            && filter.since.and_then(micros).is_none_or(|t| self.time >= t)
            && filter.until.and_then(micros).is_none_or(|t| self.time < t)
    }

    pub fn encode(&self) -> Encoded {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = category_code(self.category) | (outcome_code(self.outcome) << 4);
        out[1..9].copy_from_slice(&self.time.to_be_bytes());
        out[9..13].copy_from_slice(&hash32(TAG_ACTION, Some(&self.action)).to_be_bytes());
        out[13..17].copy_from_slice(&hash32(TAG_USER, self.user.as_deref()).to_be_bytes());
        out[17..21].copy_from_slice(&hash32(TAG_IP, self.ip.as_deref()).to_be_bytes());
        out
    }
}

/// A filter prepared for checking encoded fields: every `None` is "any".
#[derive(Debug, Clone, Default)]
pub(crate) struct Probe {
    category: Option<u8>,
    outcome: Option<u8>,
    action: Option<u32>,
    user: Option<u32>,
    ip: Option<u32>,
    since: Option<i64>,
    until: Option<i64>,
}

impl Probe {
    pub fn new(filter: &Filter) -> Probe {
        Probe {
            category: filter.category.map(category_code),
            outcome: filter.outcome.map(outcome_code),
            action: filter
                .action
                .as_deref()
                .map(|a| hash32(TAG_ACTION, Some(a))),
            user: filter.user.as_deref().map(|u| hash32(TAG_USER, Some(u))),
            ip: filter.ip.as_deref().map(|i| hash32(TAG_IP, Some(i))),
            // Timestamps are years 1..=9999, so in range; if not, no bound rules anything out.
            since: filter.since.and_then(micros),
            until: filter.until.and_then(micros),
        }
    }

    /// `false` only if an event with these encoded fields cannot match the filter.
    pub fn may_match(&self, e: &Encoded) -> bool {
        let word = |at: usize| u32::from_be_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&e[1..9]);
        let time = i64::from_be_bytes(t);
        self.category.is_none_or(|c| c == e[0] & 0x0f)
            && self.outcome.is_none_or(|o| o == e[0] >> 4)
            && self.action.is_none_or(|a| a == word(9))
            && self.user.is_none_or(|u| u == word(13))
            && self.ip.is_none_or(|i| i == word(17))
            && self.since.is_none_or(|s| time >= s)
            && self.until.is_none_or(|u| time < u)
    }

    /// Whether the time bounds leave `[lo, hi]` (µs, inclusive) any possible event.
    pub fn time_possible(&self, lo: i64, hi: i64) -> bool {
        self.since.is_none_or(|s| hi >= s) && self.until.is_none_or(|u| lo < u)
    }

    pub fn is_timed(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }
}

/// A member that is there and not `null` (the event model treats `null` as absent).
fn present(v: Option<&RawValue>) -> Option<&RawValue> {
    v.filter(|r| r.get() != "null")
}

/// A JSON string member's value, borrowed when it has no escapes; `None` if not a string.
fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(s).ok().map(Cow::Owned),
    }
}

/// `Option<Option<T>>` in the sense "absent, or present and valid": a member that is there
/// but not a string makes the whole quick read give up.
trait TransposeOpt<T> {
    fn transpose_opt(self) -> Option<Option<T>>;
}

impl<T> TransposeOpt<T> for Option<Option<T>> {
    fn transpose_opt(self) -> Option<Option<T>> {
        match self {
            None => Some(None),
            Some(None) => None,
            Some(Some(v)) => Some(Some(v)),
        }
    }
}

pub(crate) fn micros(t: Timestamp) -> Option<i64> {
    i64::try_from(t.unix_micros()).ok()
}

fn category_code(c: Category) -> u8 {
    Category::ALL.iter().position(|&x| x == c).unwrap_or(0) as u8
}

fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Unknown => 2,
    }
}

/// A stable 64-bit hash of a field's value (FNV-1a, then a MurmurHash3 finalizer).
/// It is part of the on-disk format: changing it needs a new format version.
pub(crate) fn hash64(tag: u8, value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(tag);
    for &b in value {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= value.len() as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A value's 32-bit hash in posting values: absent is 0, present never is.
fn hash32(tag: u8, value: Option<&str>) -> u32 {
    value.map_or(0, |v| (hash64(tag, v.as_bytes()) as u32) | 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stored(body: &str) -> Vec<u8> {
        format!(r#"{{"index":7,"received":"2026-11-26T16:55:08.976526Z",{body}"#).into_bytes()
    }

    #[test]
    fn quick_read_agrees_with_the_full_parse() {
        for body in [
            r#""id":"a","time":"2026-11-26T16:55:08.9Z","category":"authentication","action":"login","outcome":"failure","actor":{"user":"alice","key_id":"k"},"source":{"ip":"10.0.0.1","user_agent":"x"},"details":{"a":[1,2,{"b":null}]}}"#,
            r#""id":"a","time":"2026-11-26T16:55:08Z","category":"admin","action":"k\u00e9y.created"}"#,
            r#""id":"a","time":"2026-11-26T16:55:08Z","category":"admin","action":"x","actor":{"user":null},"source":{}}"#,
            r#""id":"a","time":"2026-11-26T16:55:08Z","category":"admin","action":"x","actor":{"user":"b\"ob"}}"#,
            r#""id":"a","time":"2026-11-26T16:55:08+01:00","category":"security","action":"x","outcome":"unknown"}"#,
            // Stored before an IPv4-mapped address was taken for its IPv4 address: both
            // reads give the address as events are stored and filters given now.
            r#""id":"a","time":"2026-11-26T16:55:08Z","category":"security","action":"x","source":{"ip":"::ffff:192.0.2.1"}}"#,
        ] {
            let b = stored(body);
            let quick = Fields::quick(&b).unwrap();
            let full = Fields::full(&b).unwrap();
            assert_eq!(quick, full, "{body}");
            if body.contains("::ffff:") {
                assert_eq!(quick.ip.as_deref(), Some("192.0.2.1"));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn quick_read_agrees_on_any_stored_event(
            action in "[a-z.\"\\\\\u{e9}\u{1F600}]{1,12}",
            user in proptest::option::of("[a-z\"\\\\ \u{e9}/]{0,12}"),
            ip in proptest::option::of(proptest::sample::select(vec!["10.0.0.1", "::1", "fe80::1"])),
            cat in 0usize..6,
            outcome in 0usize..3,
            micros in 0i128..4_000_000_000_000_000,
            details in proptest::option::of("[a-z\"\\\\{}]{0,12}"),
        ) {
            let mut e = vellum_event::Event::new(
                Category::ALL[cat],
                action,
                [Outcome::Success, Outcome::Failure, Outcome::Unknown][outcome],
            );
            e.time = Timestamp::from_unix_micros(micros).unwrap();
            e.actor = user.map(|u| serde_json::from_value(serde_json::json!({"user": u, "key_id": "k"})).unwrap());
            e.source = ip.map(|i| serde_json::from_value(serde_json::json!({"ip": i})).unwrap());
            e.details = details.map(|d| serde_json::value::to_raw_value(&serde_json::json!({"d": d, "user": "x"})).unwrap());
            let mut b = Vec::new();
            vellum_event::stored_prefix(&mut b, 3, "2026-11-26T16:55:08.976526Z");
            b.extend_from_slice(&e.canonical_body()[1..]);
            let quick = Fields::quick(&b);
            proptest::prop_assert!(quick.is_some());
            proptest::prop_assert_eq!(quick, Fields::full(&b));
        }
    }

    #[test]
    fn unexpected_shapes_fall_back_to_the_full_parse() {
        // Duplicate members: the full parse keeps the last `user`; the quick read gives up.
        let b = stored(
            r#""id":"a","time":"2026-11-26T16:55:08Z","category":"admin","action":"x","actor":{"user":"a","user":"b"}}"#,
        );
        assert!(Fields::quick(&b).is_none());
        assert_eq!(Fields::read(&b).unwrap().user.as_deref(), Some("b"));
        // Not a string: neither accepts it.
        let b = stored(r#""id":"a","time":"2026-11-26T16:55:08Z","category":"admin","action":3}"#);
        assert!(Fields::read(&b).is_none());
    }

    #[test]
    fn probe_rules_out_only_what_cannot_match() {
        let b = stored(
            r#""id":"a","time":"2026-11-26T16:55:08Z","category":"authentication","action":"login","outcome":"failure","actor":{"user":"alice"}}"#,
        );
        let f = Fields::read(&b).unwrap();
        let enc = f.encode();
        let t = Timestamp::parse("2026-11-26T16:55:08Z").unwrap();
        let yes = Filter {
            category: Some(Category::Authentication),
            outcome: Some(Outcome::Failure),
            user: Some("alice".into()),
            action: Some("login".into()),
            since: Some(t),
            ..Filter::default()
        };
        assert!(Probe::new(&yes).may_match(&enc));
        for no in [
            Filter {
                user: Some("bob".into()),
                ..yes.clone()
            },
            Filter {
                ip: Some("10.0.0.1".into()),
                ..yes.clone()
            },
            Filter {
                outcome: Some(Outcome::Success),
                ..yes.clone()
            },
            Filter {
                since: None,
                until: Some(t),
                ..yes.clone()
            },
        ] {
            assert!(!Probe::new(&no).may_match(&enc), "{no:?}");
            assert!(!f.matches(&no));
        }
    }
}
