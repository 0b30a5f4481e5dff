//! Liveness, readiness, metrics, the fallback, and the request-tracking middleware.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::state::SharedState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready while the writer accepts appends.
pub async fn readyz(State(state): State<SharedState>) -> Response {
    match state.store.poisoned() {
        None => "ready\n".into_response(),
        Some(why) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            format!("the audit log cannot record: {why}"),
        )
        .into_response(),
    }
}

pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    // Reading the index's progress touches files: off the runtime's threads.
    let lag = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || crate::index_lag(&state).ok())
            .await
            .ok()
            .flatten()
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.store, lag),
    )
}

pub async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

pub async fn not_found() -> AppError {
    AppError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Records latency by route and status.
pub async fn track(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    state.metrics.observe_request(
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}
