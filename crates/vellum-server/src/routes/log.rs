//! The public checkpoint and key, and Merkle proofs (each proof served is recorded as a
//! read of the log).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use vellum_store::Role;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::state::{SharedState, log_read};

fn b64(h: &vellum_merkle::Hash) -> String {
    base64::engine::general_purpose::STANDARD.encode(h.0)
}

/// The latest signed checkpoint, as signed-note text. Public.
pub async fn checkpoint(State(state): State<SharedState>) -> AppResult<impl IntoResponse> {
    let (_, note) = state.reader.latest_checkpoint()?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note))
}

/// The log's verifier key. Public.
pub async fn key(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", state.reader.verifier_key()),
    )
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    index: u64,
    tree_size: Option<u64>,
}

fn params<T>(p: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> AppResult<T> {
    p.map(|Query(v)| v)
        .map_err(|e| AppError::bad_request("invalid_request", e.body_text()))
}

fn latest_size(state: &SharedState) -> AppResult<u64> {
    Ok(state.reader.latest_checkpoint()?.0.size.0)
}

pub async fn inclusion(
    State(state): State<SharedState>,
    caller: Caller,
    p: Result<Query<InclusionParams>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<Value>> {
    let key = caller
        .require(&state, &[Role::Auditor, Role::Admin])
        .await?;
    let p = params(p)?;
    let size = match p.tree_size {
        Some(s) => s,
        None => latest_size(&state)?,
    };
    if p.index >= size {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("index {} is not below tree_size {size}", p.index),
        ));
    }
    let proof = state.reader.inclusion_proof(p.index, size)?;
    let read = log_read(json!({"proof": "inclusion", "index": p.index, "tree_size": size}));
    caller.audit(&state, read, &key).await?;
    Ok(Json(json!({
        "index": proof.index,
        "tree_size": proof.tree_size,
        "leaf_hash": b64(&proof.leaf_hash),
        "proof": proof.proof.iter().map(b64).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    from: u64,
    to: Option<u64>,
}

pub async fn consistency(
    State(state): State<SharedState>,
    caller: Caller,
    p: Result<Query<ConsistencyParams>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<Value>> {
    let key = caller
        .require(&state, &[Role::Auditor, Role::Admin])
        .await?;
    let p = params(p)?;
    let to = match p.to {
        Some(s) => s,
        None => latest_size(&state)?,
    };
    let proof = state.reader.consistency_proof(p.from, to)?;
    let read = log_read(json!({"proof": "consistency", "from": p.from, "to": to}));
    caller.audit(&state, read, &key).await?;
    Ok(Json(json!({
        "size1": p.from,
        "size2": to,
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
    })))
}
