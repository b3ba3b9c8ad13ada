//! `GET /readyz` and `GET /admin/cluster` in single mode, and `gavel serve --node-id`.

use std::process::{Command, Stdio};
use std::time::Duration;

use gavel::readiness::Readiness;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_serving_node_is_ready_and_lists_itself_alone() {
    let app = spawn_app("", vec![]).await;
    let response = app.http.get(format!("{}/readyz", app.base)).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<serde_json::Value>().await.expect("json"), json!({"status": "ready"}));

    let (status, cluster) = app.get_json("/admin/cluster", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{cluster}");
    let (_, config) = app.get_json("/admin/config", ADMIN_TOKEN).await;
    // The API suite also runs against one node of a cluster (GAVEL_TEST_CLUSTER): then its stores are listed.
    let (mode, node, stores) = match app.exchange {
        None => ("single", "single", json!({})),
        Some(_) => ("cluster", "node-0", json!({"redis": "ok", "postgres": "ok"})),
    };
    assert_eq!((&cluster["mode"], &cluster["node_id"], &cluster["stores"]), (&json!(mode), &json!(node), &stores));
    let nodes = cluster["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{cluster}");
    assert_eq!((&nodes[0]["node_id"], &nodes[0]["revision"]), (&json!(node), &config["revision"]));
    assert_eq!(nodes[0]["auctions_in_flight"], 0);
    let seen = nodes[0]["last_seen"].as_str().expect("last_seen");
    let seen = chrono::DateTime::parse_from_rfc3339(seen).expect("RFC 3339");
    assert!((chrono::Utc::now() - seen.with_timezone(&chrono::Utc)).num_seconds().abs() < 60, "{seen}");
    assert_eq!(app.get_json("/admin/cluster", SELLER_KEY).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn shutdown_marks_the_node_unready() {
    let app = spawn_app("", vec![]).await;
    assert_eq!(app.server.engine.readiness.get(), Readiness::Ready);
    let engine = app.stop().await;
    assert_eq!(engine.readiness.get(), Readiness::Stopping);
}

#[tokio::test]
async fn serve_takes_a_node_id_and_refuses_a_malformed_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("gavel.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\ndata_dir = \"{}\"\nadmin_token = \"node-admin\"\n\
         [[sellers]]\nid = \"s\"\napi_key = \"sk_node\"\n\
         [[campaigns]]\nid = \"c\"\nping_fields = [\"state\"]\nfloor = \"1.00\"\n",
        dir.path().join("data").display()
    );
    std::fs::write(&config, text).expect("config written");
    let serve = |node_id: &str| {
        Command::new(GAVEL)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--node-id", node_id])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts")
    };
    let refused = serve("Node A").wait_with_output().expect("exits");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--node-id"), "{refused:?}");

    let mut child = serve("node-a");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let base = format!("http://127.0.0.1:{port}");
    wait_for_health(&http, &base).await;
    let cluster: serde_json::Value = http
        .get(format!("{base}/admin/cluster"))
        .bearer_auth("node-admin")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        (&cluster["node_id"], &cluster["nodes"][0]["node_id"]),
        (&json!("node-a"), &json!("node-a")),
        "{cluster}"
    );
}
