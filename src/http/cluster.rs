//! `GET /readyz` and `GET /admin/cluster` (API.md section 5), in their single-node form: one node, no
//! shared stores. Cluster mode (section 9) adds the other nodes and the stores' health here.

use chrono::Utc;
use hyper::StatusCode;
use serde_json::json;

use super::{json_response, HttpResponse};
use crate::engine::Engine;
use crate::time::rfc3339;

/// `GET /readyz`: 200 `{"status": "ready"}` while this node can sell, else 503 with the reason.
pub fn readyz(engine: &Engine) -> HttpResponse {
    match engine.readiness.get().reason() {
        None => json_response(StatusCode::OK, &json!({"status": "ready"})),
        Some(reason) => {
            json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "unavailable", "reason": reason}))
        }
    }
}

/// `GET /admin/cluster`: the live nodes (here, this one) and the shared stores (none in single mode).
pub fn cluster(engine: &Engine) -> HttpResponse {
    let this_node = json!({
        "node_id": engine.node_id(),
        "revision": engine.config().revision,
        "last_seen": rfc3339(Utc::now()),
        "auctions_in_flight": engine.auction_slots.in_flight(),
    });
    json_response(
        StatusCode::OK,
        &json!({"mode": "single", "node_id": engine.node_id(), "nodes": [this_node], "stores": {}}),
    )
}
