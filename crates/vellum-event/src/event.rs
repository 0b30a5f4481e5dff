//! The event itself: categories, outcomes, the native shape and the chapter's shape.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::canonical::{Fresh, Members};
use crate::{EventError, JsonObject, Timestamp};

/// Limits applied to every event from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest accepted event, in bytes of its JSON text.
    pub max_event_bytes: usize,
}

impl Limits {
    /// The largest `max_event_bytes` a front end (the CLI's flag, the server's config)
    /// accepts.
    pub const LARGEST_EVENT_BYTES: usize = 16 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 1024 * 1024,
        }
    }
}

/// The six categories of audit event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Category {
    Authentication,
    ApiRequest,
    DataAccess,
    Admin,
    Security,
    Malfunction,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Authentication,
        Category::ApiRequest,
        Category::DataAccess,
        Category::Admin,
        Category::Security,
        Category::Malfunction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Authentication => "authentication",
            Category::ApiRequest => "api_request",
            Category::DataAccess => "data_access",
            Category::Admin => "admin",
            Category::Security => "security",
            Category::Malfunction => "malfunction",
        }
    }
}

impl FromStr for Category {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| EventError::UnknownCategory(s.chars().take(64).collect()))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the audited action succeeded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

impl FromStr for Outcome {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "unknown" => Ok(Outcome::Unknown),
            other => Err(EventError::UnknownOutcome(other.chars().take(64).collect())),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event id: the client's idempotency key, or a generated UUID.
/// 1 to 128 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 128;

    /// A fresh random (version 4) UUID.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// An empty id, never valid in an event: a placeholder where an id is needed but
    /// dropped.
    pub(crate) fn placeholder() -> Self {
        Self(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EventId {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| EventError::Invalid {
            field: "id",
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(invalid("longer than 128 bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid("contains a control character"));
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated audit event in the native shape.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: EventId,
    pub time: Timestamp,
    pub category: Category,
    pub action: String,
    pub outcome: Outcome,
    pub actor: Option<JsonObject>,
    pub source: Option<JsonObject>,
    pub target: Option<JsonObject>,
    pub request: Option<JsonObject>,
    pub reason: Option<String>,
    /// Free-form, kept as compact JSON text (always an object).
    pub details: Option<Box<RawValue>>,
}

/// Every top-level member an event may carry on the wire, native and chapter shape alike.
/// `index` and `received` only appear in stored events.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Wire<'a> {
    #[serde(borrow)]
    pub index: Option<&'a RawValue>,
    #[serde(borrow)]
    pub received: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
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
    #[serde(borrow)]
    target: Option<&'a RawValue>,
    #[serde(borrow)]
    request: Option<&'a RawValue>,
    #[serde(borrow)]
    reason: Option<&'a RawValue>,
    #[serde(borrow)]
    details: Option<&'a RawValue>,
    // The chapter's shape.
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    user: Option<&'a RawValue>,
    #[serde(borrow)]
    source_ip: Option<&'a RawValue>,
}

impl<'a> Wire<'a> {
    pub(crate) fn parse(text: &'a str) -> Result<Self, EventError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('\u{feff}') {
            return Err(EventError::ByteOrderMark);
        }
        if !trimmed.starts_with('{') {
            return Err(if trimmed.is_empty() {
                EventError::Json("empty input".into())
            } else {
                EventError::NotAnObject
            });
        }
        serde_json::from_str(text).map_err(|e| {
            let msg = json_message(&e, text);
            match msg.strip_prefix("unknown field `") {
                Some(rest) => EventError::UnknownField(rest.split('`').next().unwrap_or("").into()),
                None => EventError::Json(msg),
            }
        })
    }

    fn is_chapter_shape(&self) -> bool {
        self.event_type.is_some() && self.category.is_none()
    }

    /// Validates the members of an event (native or chapter shape) into an [`Event`].
    pub(crate) fn into_event(self, fresh: &Fresh, input: Input) -> Result<Event, EventError> {
        if self.is_chapter_shape() {
            return self.into_event_from_chapter(fresh, input);
        }
        for (name, v) in [
            ("timestamp", self.timestamp),
            ("event_type", self.event_type),
            ("user", self.user),
            ("source_ip", self.source_ip),
        ] {
            if present(v).is_some() {
                return Err(EventError::MixedShapes(name));
            }
        }
        let id = match opt_string(self.id, "id")? {
            Some(s) => s.parse()?,
            None => (fresh.id)(),
        };
        let time = match opt_string(self.time, "time")? {
            Some(s) => Timestamp::parse(&s)?,
            None => (fresh.now)(),
        };
        let category: Category = opt_string(self.category, "category")?
            .ok_or(EventError::MissingField("category"))?
            .parse()?;
        let action =
            opt_string(self.action, "action")?.ok_or(EventError::MissingField("action"))?;
        check_name("action", &action)?;
        let outcome = match opt_string(self.outcome, "outcome")? {
            Some(s) => s.parse()?,
            None => Outcome::Unknown,
        };
        let actor = opt_object(self.actor, "actor", input)?;
        if let Some(a) = &actor {
            check_member_strings(a, "actor", &["user", "key_id"])?;
        }
        let mut source = opt_object(self.source, "source", input)?;
        if let Some(s) = &mut source {
            check_member_strings(s, "source", &["ip", "user_agent"])?;
            if let Some(Value::String(ip)) = s.get_mut("ip") {
                *ip = canonical_ip(ip)?.into_owned();
            }
        }
        let canonical = |o: Option<Map<String, Value>>| o.as_ref().map(JsonObject::from_map);
        Ok(Event {
            id,
            time,
            category,
            action,
            outcome,
            actor: canonical(actor),
            source: canonical(source),
            target: canonical(opt_object(self.target, "target", input)?),
            request: canonical(opt_object(self.request, "request", input)?),
            reason: opt_string(self.reason, "reason")?,
            details: opt_details(self.details, input)?,
        })
    }

    /// `{timestamp, event_type, user, details, source_ip}`, as the chapter's Python logger writes.
    fn into_event_from_chapter(self, fresh: &Fresh, input: Input) -> Result<Event, EventError> {
        for (name, v) in [
            ("id", self.id),
            ("time", self.time),
            ("action", self.action),
            ("outcome", self.outcome),
            ("actor", self.actor),
            ("source", self.source),
            ("target", self.target),
            ("request", self.request),
            ("reason", self.reason),
        ] {
            if present(v).is_some() {
                return Err(EventError::UnknownField(format!(
                    "{name}` in a chapter-shape event (one with `event_type"
                )));
            }
        }
        let category: Category = opt_string(self.event_type, "event_type")?
            .ok_or(EventError::MissingField("event_type"))?
            .parse()?;
        let time = match opt_string(self.timestamp, "timestamp")? {
            Some(s) => Timestamp::parse(&s)?,
            None => (fresh.now)(),
        };
        let details = opt_details(self.details, input)?;
        let detail_map: Option<Map<String, Value>> = details
            .as_ref()
            .and_then(|d| serde_json::from_str(d.get()).ok());
        let detail = |k: &str| detail_map.as_ref().and_then(|m| m.get(k));
        let outcome = match detail("success") {
            Some(Value::Bool(true)) => Outcome::Success,
            Some(Value::Bool(false)) => Outcome::Failure,
            _ => Outcome::Unknown,
        };
        let action = match detail("action") {
            Some(Value::String(a)) if check_name("action", a).is_ok() => a.clone(),
            _ => "unspecified".to_string(),
        };
        let reason = match detail("reason") {
            Some(Value::String(r)) if !r.is_empty() => Some(r.clone()),
            _ => None,
        };
        let actor = opt_string(self.user, "user")?.map(|u| {
            let mut m = Map::new();
            m.insert("user".into(), Value::String(u));
            JsonObject::from_map(&m)
        });
        let source = match opt_string(self.source_ip, "source_ip")? {
            Some(ip) if ip != "unknown" && !ip.is_empty() => {
                let mut m = Map::new();
                m.insert("ip".into(), Value::String(canonical_ip(&ip)?.into_owned()));
                Some(JsonObject::from_map(&m))
            }
            _ => None,
        };
        Ok(Event {
            id: (fresh.id)(),
            time,
            category,
            action,
            outcome,
            actor,
            source,
            target: None,
            request: None,
            reason,
            details,
        })
    }
}

fn present(v: Option<&RawValue>) -> Option<&RawValue> {
    v.filter(|r| r.get() != "null")
}

fn opt_string(v: Option<&RawValue>, field: &str) -> Result<Option<String>, EventError> {
    match present(v) {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|e| wrong_or_undecodable(raw, '"', field, "a string", &e)),
    }
}

/// A member that is not of the JSON type `expected` (its first byte is not `opens`), or
/// is and does not decode (serde_json's reason, without its position inside the member).
fn wrong_or_undecodable(
    raw: &RawValue,
    opens: char,
    field: &str,
    expected: &'static str,
    e: &serde_json::Error,
) -> EventError {
    if raw.get().starts_with(opens) {
        let reason = e.to_string();
        let reason = reason
            .rsplit_once(" at line ")
            .map_or(reason.as_str(), |(r, _)| r);
        EventError::Undecodable {
            field: field.to_string(),
            reason: reason.to_string(),
        }
    } else {
        EventError::WrongType {
            field: field.to_string(),
            expected,
        }
    }
}

fn opt_object(
    v: Option<&RawValue>,
    field: &'static str,
    input: Input,
) -> Result<Option<Map<String, Value>>, EventError> {
    let Some(raw) = present(v) else {
        return Ok(None);
    };
    let map = serde_json::from_str::<Map<String, Value>>(raw.get())
        .map_err(|e| wrong_or_undecodable(raw, '{', field, "an object", &e))?;
    check_nesting(raw.get(), field, input)?;
    Ok(Some(map))
}

/// Refuses a client's object member (valid JSON text) nested deeper than [`MAX_NESTING`].
fn check_nesting(json: &str, field: &'static str, input: Input) -> Result<(), EventError> {
    if input == Input::Stored {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(EventError::Invalid {
                        field,
                        reason: format!("it nests deeper than {MAX_NESTING} levels"),
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// An address in its one textual form (RFC 5952 for IPv6: lower case, the longest run of
/// zeros compressed), so that the same address is stored, indexed and matched alike
/// however a client wrote it. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a
/// dual-stack socket reports for an IPv4 client) is the IPv4 address it maps. Borrowed
/// when `text` is already in it (every IPv4 text that parses is).
pub fn canonical_ip(text: &str) -> Result<Cow<'_, str>, EventError> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Ok(Cow::Borrowed(text)),
        Ok(IpAddr::V6(a)) if let Some(v4) = a.to_ipv4_mapped() => Ok(Cow::Owned(v4.to_string())),
        Ok(a) => {
            let canonical = a.to_string();
            Ok(if canonical == text {
                Cow::Borrowed(text)
            } else {
                Cow::Owned(canonical)
            })
        }
        Err(_) => Err(EventError::InvalidIp(text.chars().take(64).collect())),
    }
}

/// serde_json's message for `e`. An event on one line (an NDJSON line, whose number the
/// caller reports) is placed by its column alone: serde_json's "line 1" would contradict it.
fn json_message(e: &serde_json::Error, text: &str) -> String {
    let msg = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match msg.strip_suffix(&position) {
        Some(what) if e.line() == 1 && !text.contains('\n') => {
            format!("{what} at column {}", e.column())
        }
        _ => msg,
    }
}

/// Refuses a `\u` escape of half a UTF-16 surrogate pair without its other half (I-JSON,
/// RFC 7493: such a string is no Unicode text, and many readers cannot decode it). `json` is
/// valid JSON already, so every backslash is in a string.
fn check_surrogates(json: &str, field: &str) -> Result<(), EventError> {
    let b = json.as_bytes();
    let hex = |at: usize| {
        b.get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u16::from_str_radix(h, 16).ok())
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let unit = hex(i + 2).unwrap_or(0);
        let paired = (0xD800..=0xDBFF).contains(&unit)
            && b.get(i + 6..i + 8) == Some(b"\\u")
            && hex(i + 8).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
        if paired {
            i += 12;
        } else if (0xD800..=0xDFFF).contains(&unit) {
            return Err(EventError::Undecodable {
                field: field.to_string(),
                reason: format!("a lone UTF-16 surrogate escape (\\u{unit:04x})"),
            });
        } else {
            i += 6;
        }
    }
    Ok(())
}

fn opt_details(v: Option<&RawValue>, input: Input) -> Result<Option<Box<RawValue>>, EventError> {
    if let Some(raw) = present(v) {
        check_surrogates(raw.get(), "details")?;
    }
    match present(v) {
        None => Ok(None),
        Some(raw) if raw.get().starts_with('{') => {
            check_nesting(raw.get(), "details", input)?;
            RawValue::from_string(compact_json(raw.get()))
                .map(Some)
                .map_err(|e| EventError::Json(e.to_string()))
        }
        Some(_) => Err(EventError::WrongType {
            field: "details".into(),
            expected: "an object",
        }),
    }
}

fn check_member_strings(
    map: &Map<String, Value>,
    object: &str,
    keys: &[&str],
) -> Result<(), EventError> {
    for key in keys {
        match map.get(*key) {
            None | Some(Value::String(_)) | Some(Value::Null) => {}
            Some(_) => {
                return Err(EventError::WrongType {
                    field: format!("{object}.{key}"),
                    expected: "a string",
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn check_name(field: &'static str, s: &str) -> Result<(), EventError> {
    let invalid = |reason: &str| EventError::Invalid {
        field,
        reason: reason.to_string(),
    };
    if s.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if s.len() > 128 {
        return Err(invalid("longer than 128 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid("contains a control character"));
    }
    Ok(())
}

/// How deep each object member of a client's event (`details`, `actor`, `source`,
/// `target`, `request`) may nest, itself the first level. Generous for any audit data, and
/// it keeps an event, and what wraps it (a receipt, a query's answer, a SIEM's envelope),
/// well within the 127 levels serde_json reads by default; a re-sent event can always be
/// compared with the stored one up to member order (`reorder`).
pub const MAX_NESTING: usize = 64;

/// Where an event's text comes from. The limits on what a client may send apply to what
/// it sends, not to what the log holds: an older build may have stored it under others,
/// and reading it back must not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    Client,
    Stored,
}

/// Removes the insignificant whitespace of a valid JSON text, leaving strings untouched.
fn compact_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

impl Event {
    /// A new event of this kind, with a generated id and the current time.
    pub fn new(category: Category, action: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            id: EventId::generate(),
            time: Timestamp::now(),
            category,
            action: action.into(),
            outcome,
            actor: None,
            source: None,
            target: None,
            request: None,
            reason: None,
            details: None,
        }
    }

    /// Parses and validates one event, in the native or the chapter's shape.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Event, EventError> {
        Self::parse_with(bytes, limits, &Fresh::REAL)
    }

    pub(crate) fn parse_with(
        bytes: &[u8],
        limits: &Limits,
        fresh: &Fresh,
    ) -> Result<Event, EventError> {
        if bytes.len() > limits.max_event_bytes {
            return Err(EventError::TooLarge {
                size: bytes.len(),
                max: limits.max_event_bytes,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| EventError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        let wire = Wire::parse(text)?;
        if present(wire.index).is_some() {
            return Err(EventError::Invalid {
                field: "index",
                reason: "is assigned by the log, not by the client".into(),
            });
        }
        if present(wire.received).is_some() {
            return Err(EventError::Invalid {
                field: "received",
                reason: "is assigned by the log, not by the client".into(),
            });
        }
        wire.into_event(fresh, Input::Client)
    }

    /// Sets `details` from a JSON value; anything but an object is stored under `"value"`.
    pub fn with_details(mut self, details: Value) -> Self {
        let details = match details {
            Value::Object(m) => Value::Object(m),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                Value::Object(m)
            }
        };
        self.details = serde_json::value::to_raw_value(&details).ok();
        self
    }

    /// The acting user, if any (`actor.user`).
    pub fn user(&self) -> Option<String> {
        self.actor.as_ref()?.get_str("user")
    }

    /// The source address, if any (`source.ip`).
    pub fn ip(&self) -> Option<String> {
        self.source.as_ref()?.get_str("ip")
    }

    /// The canonical JSON object of this event without `index` and `received`:
    /// compact, members in the documented order.
    pub fn canonical_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_canonical_body(&mut out);
        out
    }

    /// Appends [`Event::canonical_body`] to `out`.
    pub fn write_canonical_body(&self, out: &mut Vec<u8>) {
        Members {
            id: &self.id,
            time: &self.time,
            category: self.category,
            action: &self.action,
            outcome: self.outcome,
            objects: [&self.actor, &self.source, &self.target, &self.request]
                .map(|o| o.as_ref().map(|o| o.as_str().as_bytes())),
            reason: self.reason.as_deref(),
            details: self.details.as_ref().map(|d| d.get().as_bytes()),
        }
        .write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_strings() {
        assert_eq!(
            compact_json("{ \"a b\" : [1, 2],\n \"c\":\"x \\\" y\" }"),
            "{\"a b\":[1,2],\"c\":\"x \\\" y\"}"
        );
    }
}
