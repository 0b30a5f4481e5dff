//! The chapter-shape adapter, driven by structure: events shaped as the chapter's Python logger
//! writes them (`{"timestamp","event_type","user","details","source_ip"}`, `isoformat()` times
//! without offset, `json.dumps` separators and `\uXXXX` escapes), with fuzzed values.
//!
//! Checks, against a model of the adapter's documented mapping: an event with a known category,
//! a valid time and a valid (or `"unknown"`, or empty) address is accepted; an unknown category
//! or address is refused; the accepted event keeps the category, the time (as UTC, microsecond
//! form), `user` as `actor.user`, `source_ip` as `source.ip`, `details.success` as the outcome,
//! `details.action` as the action when it is a valid name (else `unspecified`) and a non-empty
//! `details.reason` as the reason; and it round-trips canonically as a native event.
#![no_main]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde_json::{Map, Value, json};
use vellum_event::{Category, Event, EventError, Limits, Outcome};

#[derive(Arbitrary, Debug)]
struct Input {
    timestamp: Option<Time>,
    event_type: EventType,
    user: Member<String>,
    details: Member<Details>,
    source_ip: SourceIp,
    style: Style,
}

/// A member that is there, `null`, or missing.
#[derive(Arbitrary, Debug)]
enum Member<T> {
    Value(T),
    Null,
    Missing,
}

#[derive(Arbitrary, Debug)]
enum EventType {
    Known(u8),
    Other(String),
}

/// The fields of a naive `datetime`; reduced into range when printed.
#[derive(Arbitrary, Debug)]
struct Time {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    microsecond: u32,
}

#[derive(Arbitrary, Debug)]
struct Details {
    success: Option<Option<bool>>,
    action: Option<String>,
    reason: Option<String>,
    extra: Vec<(String, Extra)>,
}

#[derive(Arbitrary, Debug)]
enum Extra {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<String>),
}

#[derive(Arbitrary, Debug)]
enum SourceIp {
    Missing,
    Null,
    Unknown,
    Empty,
    V4([u8; 4]),
    V6([u16; 8]),
    Other(String),
}

/// How the JSON text is laid out: Python's `json.dumps` default, compact, or pretty.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Style {
    Python,
    Compact,
    Pretty,
}

impl Time {
    /// `datetime.isoformat()` of a naive datetime, and the stored form the log must keep.
    fn render(&self) -> (String, String) {
        let year = 1 + self.year % 9999;
        let month = 1 + self.month % 12;
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let day = 1 + self.day % days;
        let (h, m, s) = (self.hour % 24, self.minute % 60, self.second % 60);
        let us = self.microsecond % 1_000_000;
        let base = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
        let iso = if us == 0 {
            base.clone()
        } else {
            format!("{base}.{us:06}")
        };
        (iso, format!("{base}.{us:06}Z"))
    }
}

fn is_valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control)
}

/// `json.dumps`'s default separators: `", "` and `": "`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `ensure_ascii=True`: every non-ASCII character as `\uXXXX` (surrogate pairs above U+FFFF).
/// Non-ASCII characters only occur inside strings, so this keeps the JSON valid.
fn ensure_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// How the store writes an address it accepted, said here without the store's code: one
/// text per address (std's `Display`, RFC 5952 for IPv6), an IPv4-mapped IPv6 address as the
/// IPv4 address it maps.
fn stored_form(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

fn render(value: &Value, style: Style) -> Vec<u8> {
    match style {
        Style::Compact => serde_json::to_vec(value).expect("a Value serializes"),
        Style::Pretty => serde_json::to_vec_pretty(value).expect("a Value serializes"),
        Style::Python => {
            let mut out = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
            value.serialize(&mut ser).expect("a Value serializes");
            ensure_ascii(std::str::from_utf8(&out).expect("serde_json writes UTF-8")).into_bytes()
        }
    }
}

fn member<T>(obj: &mut Map<String, Value>, key: &str, m: &Member<T>, f: impl Fn(&T) -> Value) {
    match m {
        Member::Value(v) => {
            obj.insert(key.into(), f(v));
        }
        Member::Null => {
            obj.insert(key.into(), Value::Null);
        }
        Member::Missing => {}
    }
}

fuzz_target!(|input: Input| {
    let mut obj = Map::new();
    let mut expect_ok = true;

    let expected_time = input.timestamp.as_ref().map(|t| {
        let (iso, stored) = t.render();
        obj.insert("timestamp".into(), Value::String(iso));
        stored
    });

    let category = match &input.event_type {
        EventType::Known(i) => Some(Category::ALL[usize::from(*i) % Category::ALL.len()]),
        EventType::Other(s) => Category::ALL.into_iter().find(|c| c.as_str() == s),
    };
    let event_type = match &input.event_type {
        EventType::Known(_) => category
            .map(Category::as_str)
            .unwrap_or_default()
            .to_owned(),
        EventType::Other(s) => s.clone(),
    };
    obj.insert("event_type".into(), Value::String(event_type));
    expect_ok &= category.is_some();

    member(&mut obj, "user", &input.user, |u| Value::String(u.clone()));

    member(&mut obj, "details", &input.details, |d| {
        let mut m = Map::new();
        // The members the adapter reads are set below, from the fields that model them.
        for (k, v) in d
            .extra
            .iter()
            .filter(|(k, _)| !["success", "action", "reason"].contains(&k.as_str()))
        {
            let v = match v {
                Extra::Null => Value::Null,
                Extra::Bool(b) => json!(b),
                Extra::Int(i) => json!(i),
                // Python writes NaN and Infinity, which are not JSON; the chapter never logs them.
                Extra::Float(f) if f.is_finite() => json!(f),
                Extra::Float(_) => json!(0.5),
                Extra::Str(s) => json!(s),
                Extra::List(l) => json!(l),
            };
            m.insert(k.clone(), v);
        }
        if let Some(success) = d.success {
            m.insert("success".into(), json!(success));
        }
        if let Some(action) = &d.action {
            m.insert("action".into(), json!(action));
        }
        if let Some(reason) = &d.reason {
            m.insert("reason".into(), json!(reason));
        }
        Value::Object(m)
    });

    let expected_ip = match &input.source_ip {
        SourceIp::Missing => None,
        SourceIp::Null => {
            obj.insert("source_ip".into(), Value::Null);
            None
        }
        SourceIp::Unknown => {
            obj.insert("source_ip".into(), json!("unknown"));
            None
        }
        SourceIp::Empty => {
            obj.insert("source_ip".into(), json!(""));
            None
        }
        SourceIp::V4(o) => {
            let ip = Ipv4Addr::from(*o).to_string();
            obj.insert("source_ip".into(), json!(ip));
            Some(ip)
        }
        SourceIp::V6(s) => {
            let ip = Ipv6Addr::from(*s);
            obj.insert("source_ip".into(), json!(ip.to_string()));
            Some(stored_form(IpAddr::V6(ip)))
        }
        SourceIp::Other(s) => {
            obj.insert("source_ip".into(), json!(s));
            match s.as_str() {
                "" | "unknown" => None,
                _ => {
                    let parsed = s.parse::<IpAddr>();
                    expect_ok &= parsed.is_ok();
                    parsed.ok().map(stored_form)
                }
            }
        }
    };

    let bytes = render(&Value::Object(obj), input.style);
    let result = Event::parse(&bytes, &Limits::default());
    let text = String::from_utf8_lossy(&bytes);
    let event = match (result, expect_ok) {
        (Ok(event), true) => event,
        (Err(e), false) => {
            assert!(
                matches!(e, EventError::UnknownCategory(_) | EventError::InvalidIp(_)),
                "unexpected error {e:?} for {text}"
            );
            return;
        }
        (Ok(event), false) => panic!("accepted {text}\nas {event:?}"),
        (Err(e), true) => panic!("refused {text}: {e}"),
    };

    assert_eq!(Some(event.category), category, "{text}");
    if let Some(time) = expected_time {
        assert_eq!(event.time.to_string(), time, "{text}");
    }
    let user = match &input.user {
        Member::Value(u) => Some(u.as_str()),
        _ => None,
    };
    assert_eq!(event.user().as_deref(), user, "{text}");
    assert_eq!(event.ip().as_deref(), expected_ip.as_deref(), "{text}");

    let details = match &input.details {
        Member::Value(d) => Some(d),
        _ => None,
    };
    let outcome = match details.and_then(|d| d.success) {
        Some(Some(true)) => Outcome::Success,
        Some(Some(false)) => Outcome::Failure,
        _ => Outcome::Unknown,
    };
    assert_eq!(event.outcome, outcome, "{text}");
    let action = details
        .and_then(|d| d.action.as_deref())
        .filter(|a| is_valid_name(a))
        .unwrap_or("unspecified");
    assert_eq!(event.action, action, "{text}");
    let reason = details
        .and_then(|d| d.reason.as_deref())
        .filter(|r| !r.is_empty());
    assert_eq!(event.reason.as_deref(), reason, "{text}");
    assert_eq!(event.details.is_some(), details.is_some(), "{text}");

    vellum_fuzz::check_event(&event, 0);
});
