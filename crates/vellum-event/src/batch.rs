//! Bodies holding several events: one JSON object, a JSON array, or NDJSON.
//! A batch is all-or-nothing: the first bad event rejects the whole body.

use serde_json::value::RawValue;

use crate::{BatchError, Event, EventError, Limits};

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
    let events = match format {
        BodyFormat::Ndjson => parse_ndjson(body, limits)?,
        BodyFormat::Json => parse_json(body, limits)?,
    };
    if events.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(events)
}

fn parse_ndjson(body: &[u8], limits: &Limits) -> Result<Vec<Event>, BatchError> {
    let mut events = Vec::with_capacity(body.len() / 320 + 1);
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = Event::parse(line, limits).map_err(|error| BatchError::Item {
            kind: "line",
            item: n + 1,
            error,
        })?;
        events.push(event);
    }
    Ok(events)
}

fn parse_json(body: &[u8], limits: &Limits) -> Result<Vec<Event>, BatchError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        BatchError::Body(EventError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })
    })?;
    if !text.trim_start().starts_with('[') {
        return Event::parse(body, limits)
            .map(|e| vec![e])
            .map_err(BatchError::Body);
    }
    let items: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| BatchError::Body(EventError::Json(e.to_string())))?;
    items
        .iter()
        .enumerate()
        .map(|(n, raw)| {
            Event::parse(raw.get().as_bytes(), limits).map_err(|error| BatchError::Item {
                kind: "element",
                item: n + 1,
                error,
            })
        })
        .collect()
}
