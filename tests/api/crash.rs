//! Durability through the real binary: SIGKILL in the middle of concurrent sales, then a restart on the same
//! data directory; and start-up on a damaged journal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gavel::sim::{SimBuyer, SimBuyerSpec};
use parking_lot::Mutex;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::helpers::serve_binary;

/// A config file in a temp dir whose data directory survives restarts of the binary.
struct Site {
    dir: tempfile::TempDir,
    port: u16,
    _buyer: SimBuyer,
}

impl Site {
    async fn new() -> Site {
        let buyer = SimBuyer::start(SimBuyerSpec::bidding("7.25")).await.unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gavel.toml"),
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\nadmin_token = \"admin\"\n\
                 [[sellers]]\nid = \"s\"\napi_key = \"sk\"\nmargin_percent = \"10\"\n\
                 [[campaigns]]\nid = \"c\"\nping_fields = [\"state\"]\nfloor = \"1.00\"\nping_deadline_ms = 2000\n\
                 [[buyers]]\nid = \"b\"\napi_key = \"bk\"\ncampaigns = [\"c\"]\ntimeout_ms = 1900\ndedupe_days = 0\n\
                 ping_url = \"{ping}\"\npost_url = \"{post}\"\n[buyers.returns]\nrate_cap_percent = \"100\"\n",
                data = dir.path().join("data").display(),
                ping = buyer.ping_url(),
                post = buyer.post_url(),
            ),
        )
        .unwrap();
        Site { dir, port, _buyer: buyer }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&self) -> Child {
        serve_binary(&[], &self.dir.path().join("gavel.toml"), Stdio::piped())
    }

    /// Starts the binary and waits until it answers.
    async fn start(&self, http: &reqwest::Client) -> Child {
        let mut child = self.spawn();
        for _ in 0..200 {
            if http.get(format!("{}/healthz", self.base())).send().await.is_ok() {
                return child;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("gavel exited at start-up with {status}: {}", stderr_of(child));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gavel did not come up");
    }
}

fn stderr_of(child: Child) -> String {
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned()
}

async fn send(
    http: &reqwest::Client,
    url: String,
    key: &str,
    body: Value,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = http.post(url).bearer_auth(key).json(&body).send().await?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url).bearer_auth("admin").send().await.unwrap().json().await.unwrap()
}

fn lead(n: usize) -> Value {
    json!({"state": "CA", "postal_code": "94107", "first_name": "A", "last_name": "B",
           "phone": format!("415867{:04}", n % 10_000), "email": format!("crash{n}@example.com")})
}

fn money(value: &Value) -> Decimal {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn after_sigkill_every_answered_sale_is_there_exactly_once() {
    let site = Site::new().await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut child = site.start(&http).await;
    let (status, _) =
        send(&http, format!("{}/admin/buyers/b/deposits", site.base()), "admin", json!({"amount": "100000.00"}))
            .await
            .unwrap();
    assert_eq!(status, StatusCode::CREATED);
    // One sale returned before the crash: its reversal must survive too.
    let (_, first) = send(&http, format!("{}/v1/leads", site.base()), "sk", json!({"campaign": "c", "lead": lead(0)}))
        .await
        .unwrap();
    let first_id = first["lead_id"].as_str().unwrap().to_owned();
    let (status, filed) =
        send(&http, format!("{}/v1/returns", site.base()), "bk", json!({"lead_id": first_id, "reason": "fake_info"}))
            .await
            .unwrap();
    assert_eq!((status, &filed["status"]), (StatusCode::CREATED, &json!("approved")), "{filed}");

    // Eight sellers post as fast as they can until the process dies under them.
    let answered_sold = Arc::new(Mutex::new(vec![first_id.clone()]));
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (http, base, answered_sold) = (http.clone(), site.base(), Arc::clone(&answered_sold));
            tokio::spawn(async move {
                for n in 0..5_000 {
                    let body = json!({"campaign": "c", "lead": lead(1 + worker * 5_000 + n)});
                    match send(&http, format!("{base}/v1/leads"), "sk", body).await {
                        Ok((_, sold)) if sold["status"] == "sold" => {
                            answered_sold.lock().push(sold["lead_id"].as_str().unwrap().to_owned());
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    while answered_sold.lock().len() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let answered_sold = answered_sold.lock().clone();

    let mut child = site.start(&http).await;
    let transactions = get(&http, format!("{}/admin/ledger/transactions?account=buyer:b", site.base())).await;
    let mut sales: HashMap<String, usize> = HashMap::new();
    let (mut deposits, mut sold, mut returned) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for transaction in transactions["transactions"].as_array().unwrap() {
        let buyer_leg = transaction["postings"].as_array().unwrap().iter().find(|p| p["account"] == "buyer:b").unwrap();
        match transaction["kind"].as_str().unwrap() {
            "sale" => {
                *sales.entry(transaction["lead_id"].as_str().unwrap().to_owned()).or_default() += 1;
                sold -= money(&buyer_leg["amount"]);
            }
            "return" => returned += money(&buyer_leg["amount"]),
            "deposit" => deposits += money(&buyer_leg["amount"]),
            other => panic!("unexpected {other}"),
        }
    }
    for lead_id in &answered_sold {
        assert_eq!(sales.get(lead_id), Some(&1), "sale {lead_id} answered sold is in the books exactly once");
    }
    assert!(sales.values().all(|count| *count == 1), "no sale twice");
    assert_eq!(returned, Decimal::new(725, 2));
    let accounts = get(&http, format!("{}/admin/ledger/accounts", site.base())).await;
    let balances: HashMap<String, Decimal> = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), money(&a["balance"])))
        .collect();
    assert_eq!(balances["buyer:b"], deposits - sold + returned);
    assert_eq!(deposits, Decimal::new(100_000, 0));
    assert!(balances.values().sum::<Decimal>().is_zero());

    // New sales still work after recovery.
    let (_, after) =
        send(&http, format!("{}/v1/leads", site.base()), "sk", json!({"campaign": "c", "lead": lead(49_999)}))
            .await
            .unwrap();
    assert_eq!(after["status"], "sold", "{after}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The journal's segment files under the data directory, in order.
fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Where the records of a journal segment end, walked by their length prefixes (the format is written out
/// in `src/ledger/journal/format.rs`): a 20-byte header, then records of `len:u32 crc:u32 kind:u8 payload`
/// until a zero kind byte, where the zeroes the journal preallocates ahead of its records begin.
fn records_end(segment: &[u8]) -> usize {
    const HEADER: usize = 20;
    const FRAME: usize = 9;
    let mut at = HEADER;
    while at + FRAME <= segment.len() && segment[at + FRAME - 1] != 0 {
        at += FRAME + u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
    }
    assert!(at <= segment.len() && segment[at..].iter().all(|&b| b == 0), "only zeroes follow the records");
    at
}

/// Runs a few sales through the binary and stops it with SIGTERM (a clean stop).
async fn site_with_sales(count: usize) -> Site {
    let site = Site::new().await;
    let http = reqwest::Client::new();
    let child = site.start(&http).await;
    send(&http, format!("{}/admin/buyers/b/deposits", site.base()), "admin", json!({"amount": "1000.00"}))
        .await
        .unwrap();
    for n in 0..count {
        let (_, sold) =
            send(&http, format!("{}/v1/leads", site.base()), "sk", json!({"campaign": "c", "lead": lead(n)}))
                .await
                .unwrap();
        assert_eq!(sold["status"], "sold");
    }
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    site
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_with_a_warning() {
    let site = site_with_sales(3).await;
    let last = segments(&site.data_dir()).pop().unwrap();
    // The crash came before the last five bytes of the last record reached the disk: where the segment was
    // preallocated they are still zeroes, and a grown segment ends five bytes early.
    let mut bytes = std::fs::read(&last).unwrap();
    let end = records_end(&bytes);
    if end < bytes.len() {
        bytes[end - 5..end].fill(0);
    } else {
        bytes.truncate(end - 5);
    }
    std::fs::write(&last, bytes).unwrap();

    let http = reqwest::Client::new();
    let mut child = site.start(&http).await;
    let transactions = get(&http, format!("{}/admin/ledger/transactions", site.base())).await;
    // The deposit and two sales are whole; the third sale's record was torn.
    assert_eq!(transactions["transactions"].as_array().unwrap().len(), 3, "{transactions}");
    child.kill().unwrap();
    let stderr = stderr_of(child);
    assert!(stderr.contains("torn"), "start-up warns about the torn record: {stderr}");
}

#[tokio::test]
async fn a_damaged_record_in_the_middle_stops_start_up_with_a_clear_error() {
    let site = site_with_sales(3).await;
    let first = segments(&site.data_dir()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = records_end(&bytes) / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();

    let child = site.spawn();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("journal"), "the error names the journal: {stderr}");
    assert!(stderr.contains(&first.file_name().unwrap().to_string_lossy().into_owned()), "and the file: {stderr}");
}

#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let site = Site::new().await;
    let http = reqwest::Client::new();
    let mut child = site.start(&http).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let line = status.lines().find(|line| line.starts_with("THP_enabled:")).expect("a kernel that reports THP");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
