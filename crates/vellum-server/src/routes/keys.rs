//! Key management (admin only, audited durably).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use vellum_event::{Category, Event, Outcome};
use vellum_store::{Revocation, Role};

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::state::{SharedState, key_event};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    role: String,
}

pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    body: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let admin = caller.require(&state, &[Role::Admin]).await?;
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_request", e.body_text()))?;
    let role: Role = req.role.parse().map_err(|e: vellum_store::StoreError| {
        AppError::bad_request("invalid_request", e.to_string())
    })?;
    let new = state.keys.create(&req.name, role)?;
    let mut ev = key_event("key.created", &new.key, Some(&admin));
    caller.describe(&mut ev, Some(&admin));
    state.audit_durably(ev).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": new.key.id, "name": new.key.name, "role": new.key.role,
            "created": new.key.created, "token": new.token,
        })),
    ))
}

pub async fn list(State(state): State<SharedState>, caller: Caller) -> AppResult<Json<Value>> {
    let admin = caller.require(&state, &[Role::Admin]).await?;
    let keys: Vec<Value> = state
        .keys
        .list()
        .into_iter()
        .map(|k| json!({"id": k.id, "name": k.name, "role": k.role, "created": k.created, "revoked": k.revoked}))
        .collect();
    let listed = Event::new(Category::Admin, "key.listed", Outcome::Success)
        .with_details(json!({"keys": keys.len()}));
    caller.audit(&state, listed, &admin).await?;
    Ok(Json(json!({ "keys": keys })))
}

pub async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let admin = caller.require(&state, &[Role::Admin]).await?;
    if !state.keys.list().iter().any(|k| k.id == id) {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no key with id {id}"),
        ));
    }
    let key = match state.keys.revoke(&id)? {
        Revocation::Revoked(key) => {
            let mut ev = key_event("key.revoked", &key, Some(&admin));
            caller.describe(&mut ev, Some(&admin));
            state.audit_durably(ev).await?;
            state.keys.revocation_recorded(&key.id)?;
            key
        }
        // Revoking again changes nothing, so it records nothing; the answer is the same.
        Revocation::AlreadyRevoked { key, .. } => key,
    };
    Ok(Json(json!({"id": key.id, "revoked": key.revoked})))
}
