//! The operator API (API.md section 5) and the unauthenticated health and metrics endpoints.

use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::body::bearer;
use super::error::ApiError;
use super::{json_response, HttpResponse};
use crate::engine::Engine;

/// `GET /healthz`.
pub fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /metrics`, Prometheus text.
pub fn metrics(engine: &Engine) -> HttpResponse {
    let mut response = Response::new(engine.metrics.render().into());
    response.headers_mut().insert(CONTENT_TYPE, "text/plain; version=0.0.4".parse().expect("static header value"));
    response
}

/// Refuses a request without the admin token.
pub fn authorize(engine: &Engine, request: &Request<Incoming>) -> Result<(), ApiError> {
    let config = engine.config();
    match bearer(request.headers()) {
        Some(token) if token == config.server.admin_token.expose() => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// `GET /admin/pings/{ping_id}`: the audit trail of a recent auction.
pub fn ping_audit(engine: &Engine, ping_id: &str) -> Result<HttpResponse, ApiError> {
    let audit = engine.audit.get(ping_id).ok_or_else(|| ApiError::not_found("ping"))?;
    Ok(json_response(StatusCode::OK, &audit.to_json()))
}
