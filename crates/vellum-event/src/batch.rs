//! Bodies holding several events: one JSON object, a JSON array, or NDJSON.
//! A batch is all-or-nothing: the first bad event rejects the whole body.

use serde_json::value::RawValue;

use crate::{BatchError, Canonical, Event, EventError, Limits};

/// How a body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object, or a JSON array of objects.
    Json,
    /// One JSON object per line; blank lines are ignored.
    Ndjson,
}

/// Parses every event of a body, or says which one is wrong and why.
pub fn parse_batch(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
) -> Result<Vec<Event>, BatchError> {
    parse_batch_map(body, format, limits, |e| e)
}

/// Bodies of at least this many events are parsed on every core.
const PARALLEL_ITEMS: usize = 256;

/// Like [`parse_batch`], handing each event to `f` as soon as it is parsed (to turn it into
/// what the caller keeps, dropping the event there). Large bodies are parsed on every core;
/// the error is still that of the first bad item, as if parsed in order.
pub fn parse_batch_map<T: Send>(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
    f: impl Fn(Event) -> T + Sync + Send,
) -> Result<Vec<T>, BatchError> {
    parse_items(body, format, |bytes| Event::parse(bytes, limits).map(&f))
}

/// Like [`parse_batch_map`], for callers that only append: each event is made straight into
/// its canonical body ([`Canonical::parse`]), with the same errors.
pub fn parse_batch_canonical<T: Send>(
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
    f: impl Fn(Canonical) -> T + Sync + Send,
) -> Result<Vec<T>, BatchError> {
    parse_items(body, format, |bytes| {
        Canonical::parse(bytes, limits).map(&f)
    })
}

/// Checks every event as [`parse_batch_canonical`] would, keeping nothing; the number of
/// events, or the same error.
pub fn check_batch(body: &[u8], format: BodyFormat, limits: &Limits) -> Result<usize, BatchError> {
    parse_items(body, format, |bytes| Canonical::check(bytes, limits)).map(|v| v.len())
}

fn parse_items<T: Send>(
    body: &[u8],
    format: BodyFormat,
    one: impl Fn(&[u8]) -> Result<T, EventError> + Sync + Send,
) -> Result<Vec<T>, BatchError> {
    let (kind, items) = match format {
        BodyFormat::Ndjson => ("line", ndjson_items(body)),
        BodyFormat::Json => match json_items(body)? {
            Some(items) => ("element", items),
            None => return Ok(vec![one(body).map_err(BatchError::Body)?]),
        },
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    let item = |&(item, bytes): &(usize, &[u8])| {
        one(bytes).map_err(|error| BatchError::Item { kind, item, error })
    };
    let parsed: Vec<Result<T, BatchError>> = if items.len() >= PARALLEL_ITEMS {
        use rayon::prelude::*;
        items.par_iter().with_min_len(64).map(item).collect()
    } else {
        items.iter().map(item).collect()
    };
    // In order, so that the first bad item is the one reported.
    parsed.into_iter().collect()
}

/// The items of a body, each with its 1-based position (line or element number).
type Items<'a> = Vec<(usize, &'a [u8])>;

/// The non-blank lines of NDJSON, numbered from 1.
fn ndjson_items(body: &[u8]) -> Items<'_> {
    let mut items = Vec::with_capacity(body.len() / 256);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for (n, end) in ends.enumerate() {
        let line = body.get(start..end).unwrap_or_default();
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            items.push((n + 1, line));
        }
    }
    items
}

/// The elements of a JSON array, numbered from 1; `None` when the body is one object.
fn json_items(body: &[u8]) -> Result<Option<Items<'_>>, BatchError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        BatchError::Body(EventError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })
    })?;
    if !text.trim_start().starts_with('[') {
        return Ok(None);
    }
    let items: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| BatchError::Body(EventError::Json(e.to_string())))?;
    Ok(Some(
        items
            .into_iter()
            .enumerate()
            .map(|(n, raw)| (n + 1, raw.get().as_bytes()))
            .collect(),
    ))
}
