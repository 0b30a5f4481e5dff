//! An event's canonical body, made straight from its JSON text.
//!
//! [`Canonical::parse`] gives the same bytes as `Event::parse(..)?.canonical_body()` (and the
//! same error when the input is bad), at a fraction of the cost: for an event in the common
//! shape it validates and copies in one pass over the input, without building `serde_json`
//! maps and serialising them again. Anything outside that shape goes to the full parse,
//! which decides: escapes in strings, `null`s, nested values, numbers other than small
//! integers, or keys out of order inside `actor`/`source`/`target`/`request`, the chapter's
//! shape, and every error. The quick path never reports an error itself.
//!
//! "The same bytes" is checked by a differential test and a fuzz target
//! (`fuzz/fuzz_targets/canonical_parse.rs`): whenever the quick path accepts an input, the
//! full parse accepts it too and makes the identical body.

use std::borrow::Cow;

use crate::event::{canonical_ip, check_name};
use crate::{Category, Event, EventError, EventId, Limits, Outcome, Timestamp};

/// What fills an event's `id` and `time` when the input has none.
#[derive(Clone, Copy)]
pub(crate) struct Fresh {
    pub id: fn() -> EventId,
    pub now: fn() -> Timestamp,
}

impl Fresh {
    /// A random UUID and the clock.
    pub const REAL: Fresh = Fresh {
        id: EventId::generate,
        now: Timestamp::now,
    };

    /// For checking only, where the values are dropped: no randomness, no clock.
    const CHECK: Fresh = Fresh {
        id: EventId::placeholder,
        now: Timestamp::epoch,
    };
}

/// The canonical body of one event (see [`Event::canonical_body`]) and its id: everything
/// the store needs to append it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canonical {
    id: EventId,
    body: Vec<u8>,
}

impl Canonical {
    /// Parses and validates one event (native or chapter shape), as [`Event::parse`] does,
    /// and returns its canonical body.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Canonical, EventError> {
        Self::parse_with(bytes, limits, &Fresh::REAL)
    }

    pub(crate) fn parse_with(
        bytes: &[u8],
        limits: &Limits,
        fresh: &Fresh,
    ) -> Result<Canonical, EventError> {
        match quick(bytes, limits, fresh) {
            Some(canonical) => Ok(canonical),
            None => Event::parse_with(bytes, limits, fresh).map(|e| e.canonical()),
        }
    }

    /// Whether [`Canonical::parse`] would accept the event (and its error if not), without
    /// making the body: for a first pass that only validates.
    pub fn check(bytes: &[u8], limits: &Limits) -> Result<(), EventError> {
        match quick_with(bytes, limits, &Fresh::CHECK, |_| ()) {
            Some(_) => Ok(()),
            None => Event::parse_with(bytes, limits, &Fresh::CHECK).map(|_| ()),
        }
    }

    /// The event's id.
    pub fn id(&self) -> &EventId {
        &self.id
    }

    /// The canonical body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The canonical body, taken out.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

impl Event {
    /// This event's id and canonical body.
    pub fn canonical(&self) -> Canonical {
        Canonical {
            id: self.id.clone(),
            body: self.canonical_body(),
        }
    }
}

/// The members of a canonical body, in their order.
pub(crate) struct Members<'a> {
    pub id: &'a EventId,
    pub time: &'a Timestamp,
    pub category: Category,
    pub action: &'a str,
    pub outcome: Outcome,
    /// `actor`, `source`, `target`, `request`: canonical text (see [`crate::JsonObject`]).
    pub objects: [Option<&'a [u8]>; 4],
    pub reason: Option<&'a str>,
    /// Compact JSON text of an object.
    pub details: Option<&'a [u8]>,
}

const OBJECT_NAMES: [&str; 4] = ["actor", "source", "target", "request"];

impl Members<'_> {
    /// The one writer of canonical bodies: `{"id":…,"time":…,…}`, compact, members in this
    /// order, optional ones only when present.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        push_json_str(out, self.id.as_str());
        out.extend_from_slice(b",\"time\":\"");
        self.time.write_to(out);
        out.extend_from_slice(b"\",\"category\":\"");
        out.extend_from_slice(self.category.as_str().as_bytes());
        out.extend_from_slice(b"\",\"action\":");
        push_json_str(out, self.action);
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.push(b'"');
        for (name, object) in OBJECT_NAMES.iter().zip(&self.objects) {
            let Some(object) = object else { continue };
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(object);
        }
        if let Some(reason) = self.reason {
            out.extend_from_slice(b",\"reason\":");
            push_json_str(out, reason);
        }
        if let Some(details) = self.details {
            out.extend_from_slice(b",\"details\":");
            out.extend_from_slice(details);
        }
        out.push(b'}');
    }
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// How deep `details` may nest before the full parse decides instead: the quick path takes
/// values at depths 0 to this (`details` itself at 0; a scalar counts as a value), so it
/// never takes a level more than the full parse accepts (`MAX_NESTING`). Some input at the
/// limit goes to the full parse, which decides alike.
const MAX_DEPTH: usize = crate::event::MAX_NESTING - 1;

/// A cursor over the input of the quick path. Every method returns `None` for anything it
/// does not take on itself, which sends the whole event to the full parse.
struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// A string without escapes or control characters: its contents. Such a string is
    /// written back by `serde_json` exactly as it was read.
    fn plain_str(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let rest = self.bytes.get(self.at..)?;
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        let start = self.at;
        self.at += len + 1;
        // Cut at ASCII quotes, so always on character boundaries.
        self.text.get(start..start + len)
    }

    /// A number as `serde_json` reads it without converting it (`-?(0|[1-9]\d*)(\.\d+)?
    /// ([eE][+-]?\d+)?`); whether it is a small integer (`serde_json` writes those back
    /// unchanged).
    fn number(&mut self) -> Option<bool> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let int_len = self.at - int_start;
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
            integer = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
            integer = false;
        }
        // `-0` would be written back as `0`; more than 18 digits may not fit an i64.
        let negative_zero = self.bytes.get(start..self.at) == Some(b"-0".as_slice());
        Some(integer && int_len <= 18 && !negative_zero)
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// Any JSON value, copied to `out` without insignificant whitespace (what
    /// `compact_json` makes of it), as long as its strings have no escapes.
    fn compact_value(&mut self, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.container(out, b'}', |c, out| {
                c.copy_str(out)?;
                c.colon(out)?;
                c.compact_value(out, depth + 1)
            }),
            b'[' => self.container(out, b']', |c, out| c.compact_value(out, depth + 1)),
            b'"' => self.copy_str(out),
            _ => {
                let start = self.at;
                match self.peek()? {
                    b't' => self.literal(b"true")?,
                    b'f' => self.literal(b"false")?,
                    b'n' => self.literal(b"null")?,
                    _ => {
                        self.number()?;
                    }
                }
                out.extend_from_slice(self.bytes.get(start..self.at)?);
                Some(())
            }
        }
    }

    /// An object or array: its opening byte, then `item`s separated by commas up to
    /// `close`, all copied to `out` without whitespace.
    fn container(
        &mut self,
        out: &mut Vec<u8>,
        close: u8,
        mut item: impl FnMut(&mut Self, &mut Vec<u8>) -> Option<()>,
    ) -> Option<()> {
        out.push(self.next()?);
        self.skip_ws();
        if self.peek() == Some(close) {
            self.at += 1;
            out.push(close);
            return Some(());
        }
        loop {
            item(self, out)?;
            self.skip_ws();
            let b = self.next()?;
            out.push(b);
            if b == close {
                return Some(());
            }
            if b != b',' {
                return None;
            }
            self.skip_ws();
        }
    }

    /// `:` between a key and its value, whitespace around it skipped.
    fn colon(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.skip_ws();
        self.expect(b':')?;
        out.push(b':');
        self.skip_ws();
        Some(())
    }

    fn copy_str(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let start = self.at;
        self.plain_str()?;
        out.extend_from_slice(self.bytes.get(start..self.at)?);
        Some(())
    }

    /// An object whose members are strings, booleans, `null` or small integers, with keys
    /// in strictly increasing order: exactly what `serde_json` writes for it once parsed
    /// into a map. Copied to `out` compact. `strings` names members that must be strings
    /// (or `null`); `check` sees every string member.
    fn flat_object(
        &mut self,
        out: &mut Vec<u8>,
        strings: &[&str],
        mut check: impl FnMut(&str, &str) -> Option<()>,
    ) -> Option<()> {
        if self.peek() != Some(b'{') {
            return None;
        }
        let mut previous: Option<&str> = None;
        self.container(out, b'}', |c, out| {
            let key_start = c.at;
            let key = c.plain_str()?;
            if previous.is_some_and(|p| p >= key) {
                return None;
            }
            previous = Some(key);
            out.extend_from_slice(c.bytes.get(key_start..c.at)?);
            c.colon(out)?;
            let value_start = c.at;
            match c.peek()? {
                b'"' => check(key, c.plain_str()?)?,
                b'n' => c.literal(b"null")?,
                b't' | b'f' if strings.contains(&key) => return None,
                b't' => c.literal(b"true")?,
                b'f' => c.literal(b"false")?,
                _ if strings.contains(&key) => return None,
                _ => c.number()?.then_some(())?,
            }
            out.extend_from_slice(c.bytes.get(value_start..c.at)?);
            Some(())
        })
    }
}

/// Sets a member seen once; a second time sends the event to the full parse (which
/// reports the duplicate).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// The quick path: the canonical body of a native event in the common shape, or `None`
/// for the full parse to decide.
fn quick(bytes: &[u8], limits: &Limits, fresh: &Fresh) -> Option<Canonical> {
    let (id, body) = quick_with(bytes, limits, fresh, |members| {
        let mut body = Vec::with_capacity(bytes.len() + 64);
        members.write(&mut body);
        body
    })?;
    Some(Canonical { id, body })
}

/// The quick path up to the event's members, validated, which `then` is given.
fn quick_with<R>(
    bytes: &[u8],
    limits: &Limits,
    fresh: &Fresh,
    then: impl FnOnce(&Members<'_>) -> R,
) -> Option<(EventId, R)> {
    if bytes.len() > limits.max_event_bytes {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut c = Cursor { text, bytes, at: 0 };
    // Objects are copied into `scratch`, at these ranges, then into the body in order.
    let mut scratch = Vec::with_capacity(bytes.len());
    let mut objects: [Option<(usize, usize)>; 4] = [None; 4];
    let mut details: Option<(usize, usize)> = None;
    let (mut id, mut time, mut category, mut action, mut outcome, mut reason) =
        (None, None, None, None, None, None);
    c.skip_ws();
    c.expect(b'{')?;
    c.skip_ws();
    loop {
        let key = c.plain_str()?;
        c.skip_ws();
        c.expect(b':')?;
        c.skip_ws();
        match key {
            "id" => once(&mut id, c.plain_str()?)?,
            "time" => once(&mut time, c.plain_str()?)?,
            "category" => once(&mut category, c.plain_str()?)?,
            "action" => once(&mut action, c.plain_str()?)?,
            "outcome" => once(&mut outcome, c.plain_str()?)?,
            "reason" => once(&mut reason, c.plain_str()?)?,
            "details" => {
                if c.peek() != Some(b'{') {
                    return None;
                }
                let start = scratch.len();
                c.compact_value(&mut scratch, 0)?;
                once(&mut details, (start, scratch.len()))?;
            }
            name => {
                let slot = OBJECT_NAMES.iter().position(|n| *n == name)?;
                let start = scratch.len();
                match name {
                    "actor" => c.flat_object(&mut scratch, &["key_id", "user"], |_, _| Some(()))?,
                    // An address not in its canonical text is left to the full parse,
                    // which rewrites it.
                    "source" => c.flat_object(&mut scratch, &["ip", "user_agent"], |k, v| {
                        (k != "ip" || matches!(canonical_ip(v), Ok(Cow::Borrowed(_)))).then_some(())
                    })?,
                    _ => c.flat_object(&mut scratch, &[], |_, _| Some(()))?,
                }
                once(objects.get_mut(slot)?, (start, scratch.len()))?;
            }
        }
        c.skip_ws();
        match c.next()? {
            b',' => c.skip_ws(),
            b'}' => break,
            _ => return None,
        }
    }
    c.skip_ws();
    if c.at != bytes.len() {
        return None;
    }
    let id: EventId = match id {
        Some(s) => s.parse().ok()?,
        None => (fresh.id)(),
    };
    let time = match time {
        Some(s) => Timestamp::parse(s).ok()?,
        None => (fresh.now)(),
    };
    let category: Category = category?.parse().ok()?;
    let action = action?;
    check_name("action", action).ok()?;
    let outcome = match outcome {
        Some(s) => s.parse().ok()?,
        None => Outcome::Unknown,
    };
    let slice = |range: Option<(usize, usize)>| -> Option<Option<&[u8]>> {
        match range {
            None => Some(None),
            Some((start, end)) => scratch.get(start..end).map(Some),
        }
    };
    let [actor, source, target, request] = objects;
    let object = slice;
    let members = Members {
        id: &id,
        time: &time,
        category,
        action,
        outcome,
        objects: [
            object(actor)?,
            object(source)?,
            object(target)?,
            object(request)?,
        ],
        reason,
        details: slice(details)?,
    };
    let made = then(&members);
    Some((id, made))
}

/// For the differential fuzz target and tests: the quick path alone and the full parse
/// alone, with a fixed id and time standing in for generated ones so both can be compared.
#[doc(hidden)]
pub mod differential {
    use super::*;

    const FIXED: Fresh = Fresh {
        id: || {
            "00000000-0000-4000-8000-000000000000"
                .parse()
                .unwrap_or_else(|_| EventId::generate())
        },
        now: || Timestamp::from_unix_micros(1_764_000_000_000_000).unwrap_or_else(Timestamp::now),
    };

    /// The quick path's answer (`None`: it left the event to the full parse).
    pub fn quick(bytes: &[u8], limits: &Limits) -> Option<Canonical> {
        super::quick(bytes, limits, &FIXED)
    }

    /// The full parse's answer.
    pub fn full(bytes: &[u8], limits: &Limits) -> Result<Canonical, EventError> {
        Event::parse_with(bytes, limits, &FIXED).map(|e| e.canonical())
    }

    /// `None` when the two agree; otherwise how the quick path accepted `bytes` and the
    /// full parse did not make the same bytes.
    pub fn disagreement(bytes: &[u8], limits: &Limits) -> Option<String> {
        let input = String::from_utf8_lossy(bytes);
        let full_result = full(bytes, limits);
        // Checking alone must answer as parsing does, error included.
        let checked = Canonical::check(bytes, limits);
        if checked != full_result.as_ref().map(|_| ()).map_err(Clone::clone) {
            return Some(format!(
                "checking answered {checked:?} and the full parse {full_result:?} of {input:?}"
            ));
        }
        let quick = quick(bytes, limits)?;
        match full_result {
            Ok(full) if full == quick => None,
            Ok(full) => Some(format!(
                "the quick path made {:?} and the full parse {:?} of {input:?}",
                String::from_utf8_lossy(quick.body()),
                String::from_utf8_lossy(full.body()),
            )),
            Err(e) => Some(format!(
                "the quick path accepted what the full parse rejects ({e}): {input:?}"
            )),
        }
    }
}
