//! The HTTP listener: liveness and readiness probes, the `/config` document OpenIAP clients fetch before
//! they connect, and the public keys that verify Flowkeep's tokens (`/.well-known/jwks.json`).
//! Transports hold no business rules; this module only reports state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;

/// What the HTTP handlers need to answer.
pub struct HttpState {
    /// The running configuration (with the addresses the listeners are bound to).
    pub config: Config,
    /// False while starting and while draining for shutdown: readiness then answers 503.
    pub ready: AtomicBool,
    /// Checks that the store answers; used by readiness.
    pub store_probe: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
    /// The core, for the token verification keys.
    pub platform: Arc<flowkeep_core::Platform>,
}

/// The router for the HTTP listener.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/config", get(client_config))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

/// The JSON Web Key Set of every signing key still accepted (the active one and retired ones).
async fn jwks(State(state): State<Arc<HttpState>>) -> Response {
    Json(state.platform.jwks().await).into_response()
}

async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    readiness(&state)
}

/// `/health` is readiness with details: 200 when the server can take work, 503 otherwise.
async fn health(State(state): State<Arc<HttpState>>) -> Response {
    readiness(&state)
}

fn readiness(state: &HttpState) -> Response {
    if !state.ready.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "not accepting work"})),
        )
            .into_response();
    }
    match (state.store_probe)() {
        Ok(()) => Json(json!({"status": "ok", "store": "ok", "version": env!("CARGO_PKG_VERSION")})).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "store": e}))).into_response(),
    }
}

/// The client configuration document. OpenIAP clients parse every key with a typed default, so typed keys
/// are never `null`; `enable_analytics` is false so clients send no telemetry anywhere.
async fn client_config(State(state): State<Arc<HttpState>>) -> Response {
    let c = &state.config;
    let scheme = if c.tls_enabled() { "wss" } else { "ws" };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "domain": c.domain,
        "wshost": format!("{scheme}://{}", c.http_addr),
        "wsurl": format!("{scheme}://{}{}", c.http_addr, crate::ws::PATH),
        "namespace": "",
        "agent_domain_schema": "",
        "grafana_url": "",
        "otel_metric_url": "",
        "otel_trace_url": "",
        "otel_log_url": "",
        "auto_create_users": false,
        "validate_emails": false,
        "forgot_pass_emails": false,
        "supports_watch": true,
        "amqp_enabled_exchange": false,
        "multi_tenant": false,
        "enable_entity_restriction": false,
        "enable_web_tours": false,
        "validlicense": false,
        "enable_analytics": false,
        "ping_clients_interval": 10000,
        "collections_with_text_index": [],
        "timeseries_collections": [],
        "forceddomains": [],
    }))
    .into_response()
}
