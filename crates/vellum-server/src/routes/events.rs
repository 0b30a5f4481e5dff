//! `POST /v1/events` (ingest), `GET /v1/events` (query), `GET /v1/events/{index}`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use vellum_event::{BodyFormat, Filter, FilterText, parse_batch_canonical};
use vellum_store::{Prepared, Role};

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::state::{SharedState, log_read};

/// Runs CPU or disk work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })
}

/// Appends one event, a JSON array, or NDJSON — all or nothing — and answers after fsync.
pub async fn ingest(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<Value>> {
    // Authenticate before reading the body: an unauthenticated caller gets its 401 (and
    // is audited) without the server buffering what it sent.
    caller.require(&state, &[Role::Ingest, Role::Admin]).await?;
    let limit = state.config.server.max_body_bytes;
    let body: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the limit of {limit} bytes (or was cut off)"),
        )
    })?;
    let _permit = state.ingest_permits.try_acquire().map_err(|_| {
        AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many ingest requests at once",
        )
        .retry_after(1)
    })?;
    let format = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(ct)
            if ct.starts_with("application/x-ndjson") || ct.starts_with("application/jsonl") =>
        {
            BodyFormat::Ndjson
        }
        _ => BodyFormat::Json,
    };
    let limits = state.limits;
    // Parsing and preparing a batch is CPU work: keep it off the runtime's threads (a
    // large batch is parsed on every core).
    let events =
        blocking(move || parse_batch_canonical(&body, format, &limits, Prepared::from_canonical))
            .await?
            .map_err(|e| {
                let code = match e.event_error() {
                    Some(vellum_event::EventError::TooLarge { .. }) => "event_too_large",
                    _ => "invalid_event",
                };
                AppError::bad_request(code, e.to_string())
            })?;
    let r = state.store.append_prepared_async(events).await?;
    Ok(Json(json!({
        "accepted": r.accepted,
        "duplicates": r.duplicates,
        "first_index": r.first_index,
        "last_index": r.last_index,
        "tree_size": r.tree_size,
    })))
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct QueryParams {
    category: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    user: Option<String>,
    ip: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl QueryParams {
    fn filter(&self) -> AppResult<Filter> {
        FilterText {
            category: self.category.as_deref(),
            action: self.action.as_deref(),
            outcome: self.outcome.as_deref(),
            user: self.user.as_deref(),
            ip: self.ip.as_deref(),
            since: self.since.as_deref(),
            until: self.until.as_deref(),
        }
        .parse()
        .map_err(|e| AppError::bad_request("invalid_request", e.to_string()))
    }

    fn as_json(&self) -> Value {
        json!({
            "category": self.category, "action": self.action, "outcome": self.outcome,
            "user": self.user, "ip": self.ip, "since": self.since, "until": self.until,
            "limit": self.limit, "cursor": self.cursor,
        })
    }
}

/// Events matching the filters, oldest first, a page at a time. The read is audited
/// (durably, before any event is returned).
pub async fn query(
    State(state): State<SharedState>,
    caller: Caller,
    params: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<Page>> {
    let key = caller
        .require(&state, &[Role::Auditor, Role::Admin])
        .await?;
    let Query(params) =
        params.map_err(|e| AppError::bad_request("invalid_request", e.body_text()))?;
    let filter = params.filter()?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(AppError::bad_request(
            "invalid_request",
            "limit must be 1..=1000",
        ));
    }
    let from = match params.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<u64>().map_err(|_| {
            AppError::bad_request("invalid_request", "cursor is not one this server returned")
        })?,
    };
    let budget = state.config.server.query_max_scan;
    let st = state.clone();
    let (events, next) = blocking(move || scan(&st, &filter, from, limit, budget)).await??;
    let read = log_read(json!({
        "filters": params.as_json(),
        "returned": events.len(),
        "next_cursor": next.map(|n| n.to_string()),
    }));
    caller.audit(&state, read, &key).await?;
    Ok(Json(Page {
        events,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// A page of events. The stored bytes are embedded as they are (never re-serialized), so
/// each event hashes to its Merkle leaf.
#[derive(Serialize, Debug)]
pub struct Page {
    events: Vec<Box<RawValue>>,
    next_cursor: Option<String>,
}

/// One event and its receipt, both with the stored bytes embedded as they are.
#[derive(Serialize, Debug)]
pub struct WithReceipt {
    event: Box<RawValue>,
    receipt: vellum_store::Receipt,
}

/// One page from the query index: the matches and where to continue (None at the end).
fn scan(
    state: &SharedState,
    filter: &Filter,
    from: u64,
    limit: usize,
    budget: u64,
) -> AppResult<(Vec<Box<RawValue>>, Option<u64>)> {
    let page = state
        .index
        .query(&state.reader, filter, from, limit, budget)
        .map_err(|e| match e {
            vellum_index::IndexError::Store(s) => AppError::from(s),
            other => {
                tracing::error!(error = %other, "query index");
                AppError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        })?;
    let events = page
        .events
        .into_iter()
        .filter_map(|b| {
            String::from_utf8(b)
                .ok()
                .and_then(|s| RawValue::from_string(s).ok())
        })
        .collect();
    Ok((events, page.next))
}

/// One event with its receipt (a checkpoint is signed on demand if none covers it yet).
pub async fn get_one(
    State(state): State<SharedState>,
    caller: Caller,
    Path(index): Path<String>,
) -> AppResult<Json<WithReceipt>> {
    let key = caller
        .require(&state, &[Role::Auditor, Role::Admin])
        .await?;
    let index: u64 = index.parse().map_err(|_| {
        AppError::bad_request(
            "invalid_request",
            "the index must be a non-negative integer",
        )
    })?;
    if index >= state.store.tree_size() {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no event at index {index}"),
        ));
    }
    let covered = state
        .reader
        .latest_checkpoint()
        .map(|(c, _)| c.size.0)
        .unwrap_or(0);
    if index >= covered {
        state.store.checkpoint_async().await?;
    }
    let st = state.clone();
    let receipt = blocking(move || st.reader.receipt(index)).await??;
    caller
        .audit(&state, log_read(json!({"index": index})), &key)
        .await?;
    Ok(Json(WithReceipt {
        event: receipt.event.clone(),
        receipt,
    }))
}
