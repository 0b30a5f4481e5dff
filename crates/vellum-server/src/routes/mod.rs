//! The HTTP API: one module per group of routes (see PRODUCT.md, "Interface contract").

pub mod events;
pub mod keys;
pub mod log;
pub mod ops;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get};

use crate::state::SharedState;

/// Every route of the audit API.
pub fn router(state: SharedState) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    Router::new()
        .route("/v1/events", get(events::query).post(events::ingest))
        .route("/v1/events/{index}", get(events::get_one))
        .route("/v1/checkpoint", get(log::checkpoint))
        .route("/v1/key", get(log::key))
        .route("/v1/proof/inclusion", get(log::inclusion))
        .route("/v1/proof/consistency", get(log::consistency))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
