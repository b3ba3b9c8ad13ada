//! `GET /readyz` and `GET /admin/cluster` (API.md section 5), in their single-node form: one node, no
//! shared stores. Cluster mode (section 9) adds the other nodes and the stores' health here.

use chrono::Utc;
use hyper::StatusCode;
use serde_json::json;

use super::{json_response, HttpResponse};
use crate::engine::Engine;
use crate::time::rfc3339;

/// `GET /readyz`: 200 `{"status": "ready"}` while this node can sell, else 503 with the reason (in cluster
/// mode also while a store it needs cannot be reached).
pub fn readyz(engine: &Engine) -> HttpResponse {
    match engine.readiness.get().reason().or_else(|| crate::cluster::unready_reason(engine)) {
        None => json_response(StatusCode::OK, &json!({"status": "ready"})),
        Some(reason) => {
            json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "unavailable", "reason": reason}))
        }
    }
}

/// `GET /admin/cluster`: the live nodes (one node: this one) and the shared stores' health (none in single
/// mode). Answers even while a store is down.
pub async fn cluster(engine: &Engine) -> HttpResponse {
    let mode = if engine.coordinator.is_clustered() { "cluster" } else { "single" };
    let nodes: Vec<_> = crate::cluster::live_nodes(engine)
        .await
        .into_iter()
        .map(|node| {
            let last_seen = chrono::DateTime::from_timestamp_millis(node.last_seen_ms).unwrap_or_else(Utc::now);
            json!({
                "node_id": node.node_id,
                "revision": node.revision,
                "last_seen": rfc3339(last_seen),
                "auctions_in_flight": node.auctions_in_flight,
            })
        })
        .collect();
    let body =
        json!({"mode": mode, "node_id": engine.node_id(), "nodes": nodes, "stores": crate::cluster::stores(engine)});
    json_response(StatusCode::OK, &body)
}
