//! One error type for every route: client mistakes get their status and a clear message;
//! internal failures get a generic message, and the real one is logged once, here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vellum_store::StoreError;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        use StoreError as E;
        match &e {
            E::IndexOutOfRange { .. } => {
                AppError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            E::Pruned { .. } => AppError::new(StatusCode::GONE, "pruned", e.to_string()),
            E::IdConflict { .. } | E::IdRepeated { .. } => {
                AppError::new(StatusCode::CONFLICT, "id_conflict", e.to_string())
            }
            E::SizeOutOfRange { .. } | E::InvalidOption(_) => {
                AppError::bad_request("invalid_request", e.to_string())
            }
            E::NotYetCheckpointed { .. } => {
                AppError::new(StatusCode::CONFLICT, "not_checkpointed", e.to_string())
                    .retry_after(2)
            }
            E::NoCheckpoint => AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_checkpoint",
                e.to_string(),
            )
            .retry_after(2),
            E::Busy => {
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()).retry_after(1)
            }
            _ if e.is_disk_full() => {
                tracing::error!(error = %e, "the audit log cannot record: disk full");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_full",
                    "the audit log cannot record: its disk is full; nothing was written",
                )
                .retry_after(5)
            }
            E::SyncFailed { .. } => {
                tracing::error!(error = %e, "the audit log's disk failed a sync; the log stopped");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_failed",
                    "the audit log's disk failed to make events durable, and the log stopped \
                     recording until it is restarted; this request's events may or may not \
                     be stored: re-send them then (an event already stored is answered as a \
                     duplicate)",
                )
                .retry_after(5)
            }
            E::Poisoned(_) => {
                tracing::error!(error = %e, "the audit log stopped after an earlier failure");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the audit log stopped recording after an earlier failure and needs a \
                     restart; this request's events were not acknowledged: re-send them then \
                     (an event already stored is answered as a duplicate)",
                )
                .retry_after(5)
            }
            E::Io { .. } | E::Closed => {
                tracing::error!(error = %e, "the audit log cannot record");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the audit log cannot record right now; nothing was written",
                )
                .retry_after(5)
            }
            _ => {
                tracing::error!(error = %e, "internal error");
                AppError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type AppResult<T> = Result<T, AppError>;
