//! Logs of a full run through the real binary at its most verbose: structured, every auction line carries the
//! ping id, and none of the PII or secrets the run sent appears anywhere in them.

use std::process::{Command, Stdio};
use std::time::Duration;

use gavel::sim::{RawReply, SimBuyer, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{serve_binary, wait_for_health};

/// The run's PII and secrets, none of which may be logged.
const NEVER_LOGGED: [&str; 11] = [
    "Zebulon",
    "Quixote",
    "Evergreen",
    "3125550234",
    "555-0234",
    "zeb.q@example.org",
    "Zeb.Q@Example.org",
    "sk_log_seller",
    "bk_log_best",
    "bk_log_broken",
    "log-admin-token",
];

#[tokio::test]
async fn a_full_run_logs_structured_lines_with_ping_ids_and_no_pii_or_secrets() {
    let best = SimBuyer::start(SimBuyerSpec::bidding("12.00")).await.unwrap();
    let broken = SimBuyer::start(SimBuyerSpec {
        ping_reply: Some(RawReply { status: 500, body: "{\"error\": \"down\"}".into() }),
        ..SimBuyerSpec::bidding("1.00")
    })
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gavel.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\nadmin_token = \"log-admin-token\"\n\
             [[sellers]]\nid = \"s\"\napi_key = \"sk_log_seller\"\n\
             [[campaigns]]\nid = \"c\"\nping_fields = [\"state\", \"phone_sha256\"]\nfloor = \"1.00\"\nping_deadline_ms = 2000\n\
             [[buyers]]\nid = \"best\"\napi_key = \"bk_log_best\"\ncampaigns = [\"c\"]\ntimeout_ms = 1500\n\
             ping_url = \"{best_ping}\"\npost_url = \"{best_post}\"\nbilling = \"invoice\"\ncredit_limit = \"1000.00\"\n\
             [[buyers]]\nid = \"broken\"\napi_key = \"bk_log_broken\"\ncampaigns = [\"c\"]\ntimeout_ms = 1500\n\
             ping_url = \"{broken_ping}\"\npost_url = \"{broken_post}\"\nbilling = \"invoice\"\ncredit_limit = \"1000.00\"\n",
            data = dir.path().join("data").display(),
            best_ping = best.ping_url(),
            best_post = best.post_url(),
            broken_ping = broken.ping_url(),
            broken_post = broken.post_url(),
        ),
    )
    .unwrap();
    let mut child = serve_binary(&["--log", "trace", "--log-format", "json"], &config, Stdio::piped());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    wait_for_health(&http, &base).await;

    let send = |path: &str, key: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).bearer_auth(key).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let lead = json!({"state": "CA", "first_name": "Zebulon", "last_name": "Quixote",
        "address": "742 Evergreen Terrace", "phone": "(312) 555-0234", "email": "Zeb.Q@Example.org"});
    let ping_lead = json!({"state": "CA", "phone": "(312) 555-0234"});
    let (status, ping) = send("/v1/ping", "sk_log_seller", json!({"campaign": "c", "lead": ping_lead})).await;
    assert_eq!((status, &ping["status"]), (StatusCode::OK, &json!("bid")), "{ping}");
    let ping_id = ping["ping_id"].as_str().unwrap().to_owned();
    let (status, sold) = send("/v1/post", "sk_log_seller", json!({"ping_id": ping_id, "lead": lead})).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    // A refused lead names its key in the answer; the log must not hold its value.
    let mut bad = lead.clone();
    bad["email"] = json!("Zeb.Q@Example.org Zebulon");
    let (status, _) = send("/v1/leads", "sk_log_seller", json!({"campaign": "c", "lead": bad})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send("/v1/ping", "bk_log_best", json!({"campaign": "c", "lead": ping_lead})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let lead_id = sold["lead_id"].as_str().unwrap();
    let (status, _) = send("/v1/returns", "bk_log_best", json!({"lead_id": lead_id, "reason": "wrong_number"})).await;
    assert_eq!(status, StatusCode::CREATED);

    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let _ = child.wait();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();

    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}")))
        .collect();
    let of_ping = |message: &str| {
        lines.iter().any(|line| line["fields"]["message"] == message && line["span"]["ping_id"] == json!(ping_id))
    };
    assert!(of_ping("auction answered"), "the auction's summary carries its ping id:\n{stderr}");
    assert!(of_ping("buyer ping failed"), "a failing buyer is logged inside the auction:\n{stderr}");
    assert!(of_ping("lead sold"), "the sale is logged with its ping id:\n{stderr}");
    for secret in NEVER_LOGGED {
        assert!(!stderr.contains(secret), "{secret} was logged:\n{stderr}");
    }
}
