//! Admin API under `/_emulator/` — not part of D365, no auth: seed and
//! inspect orders, switch faults at run time, read counters, requests and
//! the write history and token grants, revoke tokens, reset.

use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::Faults;
use crate::journal::{TokenGrant, WriteRecord, WriteSource};
use crate::state::State;
use crate::store::key;

pub fn router() -> Router<Arc<State>> {
    Router::new()
        .route("/_emulator/orders", get(list_orders).put(put_orders_http))
        .route("/_emulator/orders/{area}/{number}", get(get_order))
        .route(
            "/_emulator/orders/{area}/{number}/external-write",
            post(external_write),
        )
        .route("/_emulator/reset", post(reset_http))
        .route("/_emulator/faults", get(get_faults).put(put_faults))
        .route("/_emulator/history", get(history))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/counters", get(counters))
        .route("/_emulator/token-requests", get(token_requests))
        .route("/_emulator/token-grants", get(token_grants))
        .route("/_emulator/revoke-tokens", post(revoke))
}

/// Upserts orders and records each as an admin write. Returns how many
/// were stored; invalid ones are skipped with a warning.
pub fn put_orders(state: &State, entities: &[Value]) -> Result<usize, String> {
    let mut table = state.store.write();
    let mut n = 0;
    for e in entities {
        let before = e
            .get("dataAreaId")
            .zip(e.get("SalesOrderNumber"))
            .and_then(|(a, s)| table.get(&key(a.as_str()?, s.as_str()?)))
            .map(|o| o.etag.clone())
            .unwrap_or_default();
        let k = state
            .store
            .upsert(&mut table, e)
            .map_err(|err| err.to_string())?;
        let after = table.get(&k).map(|o| o.etag.clone());
        let fields = e.as_object().cloned().unwrap_or_default();
        state.journal.write(WriteRecord {
            seq: 0,
            data_area_id: k.0,
            sales_order_number: k.1,
            source: WriteSource::Admin,
            if_match: None,
            etag_before: before,
            etag_after: after,
            accepted: true,
            status: 200,
            fields,
            ignored: Vec::new(),
            via_batch: false,
            at_ms: 0,
            agent: None,
        });
        n += 1;
    }
    Ok(n)
}

pub fn reset(state: &State) {
    state.store.reset();
    state.journal.clear();
    state.throttle.reset();
    state.rng.reseed();
    state
        .warm
        .store(false, std::sync::atomic::Ordering::Relaxed);
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PutParams {
    /// `?replace=true` drops every order first.
    replace: bool,
}

async fn list_orders(AxState(state): AxState<Arc<State>>) -> Json<Vec<Value>> {
    let t = state.store.read();
    Json(t.values().map(|o| Value::Object(o.to_json())).collect())
}

async fn put_orders_http(
    AxState(state): AxState<Arc<State>>,
    Query(p): Query<PutParams>,
    Json(orders): Json<Vec<Value>>,
) -> Response {
    if p.replace {
        state.store.write().clear();
    }
    match put_orders(&state, &orders) {
        Ok(n) => Json(json!({"upserted": n})).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn get_order(
    AxState(state): AxState<Arc<State>>,
    Path((area, number)): Path<(String, String)>,
) -> Response {
    let t = state.store.read();
    match t.get(&key(&area, &number)) {
        Some(o) => Json(Value::Object(o.to_json())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn external_write(
    AxState(state): AxState<Arc<State>>,
    Path((area, number)): Path<(String, String)>,
    Json(fields): Json<Map<String, Value>>,
) -> Response {
    match crate::write::external_write(&state, &area, &number, &fields, WriteSource::External) {
        Some(etag) => Json(json!({"etag": etag})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such order or invalid fields"})),
        )
            .into_response(),
    }
}

async fn reset_http(AxState(state): AxState<Arc<State>>) -> StatusCode {
    reset(&state);
    StatusCode::NO_CONTENT
}

async fn get_faults(AxState(state): AxState<Arc<State>>) -> Json<Faults> {
    Json((*state.faults()).clone())
}

async fn put_faults(AxState(state): AxState<Arc<State>>, Json(f): Json<Faults>) -> Json<Faults> {
    state.set_faults(f.clone());
    Json(f)
}

async fn history(AxState(state): AxState<Arc<State>>) -> Json<Vec<WriteRecord>> {
    Json(state.journal.history())
}

async fn requests(AxState(state): AxState<Arc<State>>) -> Response {
    Json(state.journal.requests()).into_response()
}

async fn counters(
    AxState(state): AxState<Arc<State>>,
) -> Json<std::collections::BTreeMap<String, u64>> {
    Json(state.journal.counters())
}

async fn token_requests(AxState(state): AxState<Arc<State>>) -> Json<Value> {
    Json(json!({"tokenRequests": state.journal.token_requests()}))
}

/// Issued tokens with the kind of credential used (for out-of-process tests).
async fn token_grants(AxState(state): AxState<Arc<State>>) -> Json<Vec<TokenGrant>> {
    Json(state.journal.grants())
}

async fn revoke(AxState(state): AxState<Arc<State>>) -> StatusCode {
    state.tokens.revoke_all();
    StatusCode::NO_CONTENT
}
