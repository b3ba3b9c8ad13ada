//! The binary: `check-config`, and graceful shutdown on SIGTERM with an auction in flight.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use gavel::sim::{Latency, SimBuyer, SimBuyerSpec};
use serde_json::{json, Value};

use crate::helpers::{serve_binary, wait_for_health, GAVEL};

/// The `env:` secrets config/example.toml names.
const EXAMPLE_SECRETS: [&str; 8] = [
    "GAVEL_ADMIN_TOKEN",
    "GAVEL_SELLER_ACME_KEY",
    "GAVEL_SELLER_NORTHWIND_KEY",
    "GAVEL_BUYER_BEST_KEY",
    "GAVEL_BUYER_BEST_AUTH",
    "GAVEL_BUYER_SOLAR_KEY",
    "GAVEL_BUYER_SOLAR_AUTH",
    "GAVEL_BUYER_QUOTEHUB_KEY",
];

#[test]
fn check_config_accepts_the_shipped_files_and_lists_every_problem_of_a_broken_one() {
    for shipped in ["config/demo.toml", "config/example.toml"] {
        let output = Command::new(GAVEL)
            .args(["check-config", shipped])
            .envs(EXAMPLE_SECRETS.iter().map(|name| (name, format!("secret-{name}"))))
            .output()
            .unwrap();
        assert!(output.status.success(), "{shipped}: {}", String::from_utf8_lossy(&output.stderr));
    }

    let mut broken = tempfile::NamedTempFile::new().unwrap();
    writeln!(broken, "[server]\nlisten = \"nowhere\"\ndata_dir = \"d\"\nadmin_token = \"t\"\n[[sellers]]\nid = \"BAD ID\"\napi_key = \"k\"\ncolour = 1").unwrap();
    let output = Command::new(GAVEL).arg("check-config").arg(broken.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for path in ["server.listen", "sellers[0].id", "sellers[0].colour"] {
        assert!(stderr.contains(path), "names {path}: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_finishes_the_auction_in_flight_then_exits_zero() {
    let slow =
        SimBuyerSpec { ping_latency: Latency::Fixed(Duration::from_millis(300)), ..SimBuyerSpec::bidding("5.00") };
    let buyer = SimBuyer::start(slow).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gavel.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\nadmin_token = \"admin\"\n\
             [[sellers]]\nid = \"s\"\napi_key = \"sk\"\n\
             [[campaigns]]\nid = \"c\"\nping_fields = [\"state\"]\nfloor = \"1.00\"\nping_deadline_ms = 1000\n\
             [[buyers]]\nid = \"b\"\napi_key = \"bk\"\ncampaigns = [\"c\"]\ntimeout_ms = 900\nbilling = \"invoice\"\ncredit_limit = \"100.00\"\nping_url = \"{ping}\"\npost_url = \"{post}\"\n",
            data = dir.path().join("data").display(),
            ping = buyer.ping_url(),
            post = buyer.post_url(),
        ),
    )
    .unwrap();
    let mut child = serve_binary(&[], &config, Stdio::null());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for_health(&http, &base).await;

    let ping = tokio::spawn({
        let http = http.clone();
        async move {
            http.post(format!("{base}/v1/ping"))
                .bearer_auth("sk")
                .json(&json!({"campaign": "c", "lead": {"state": "CA"}}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());

    let answer = ping.await.unwrap();
    assert_eq!(answer["status"], "bid", "the in-flight auction finished: {answer}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sighup_reloads_the_config_file_and_a_broken_one_leaves_the_running_config() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gavel.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\nadmin_token = \"admin\"\n\
         [[sellers]]\nid = \"s\"\napi_key = \"sk\"\n\
         [[campaigns]]\nid = \"c\"\nping_fields = [\"state\"]\nfloor = \"1.00\"\n",
        data = dir.path().join("data").display(),
    );
    std::fs::write(&config, &text).unwrap();
    let mut child = serve_binary(&[], &config, Stdio::null());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for_health(&http, &base).await;
    let admin_config = || async {
        let answer = http.get(format!("{base}/admin/config")).bearer_auth("admin").send().await.unwrap();
        answer.json::<Value>().await.unwrap()
    };
    let hangup = || Command::new("kill").arg("-HUP").arg(child.id().to_string()).status().unwrap();
    let first = admin_config().await;
    assert_eq!(first["campaigns"], 1);

    // A second campaign, then SIGHUP: the server picks the file up.
    std::fs::write(&config, format!("{text}[[campaigns]]\nid = \"d\"\nping_fields = [\"state\"]\nfloor = \"1.00\"\n"))
        .unwrap();
    hangup();
    let mut reloaded = Value::Null;
    for _ in 0..100 {
        reloaded = admin_config().await;
        if reloaded["campaigns"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reloaded["campaigns"], 2, "{reloaded}");
    assert_ne!(reloaded["revision"], first["revision"]);

    // A broken file: the signal changes nothing, and the server keeps serving.
    std::fs::write(&config, "[server]\nlisten = 5\n").unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(admin_config().await, reloaded);
    let _ = child.kill();
    let _ = child.wait();
}
