//! Test harness: simulated buyers on loopback and the real server on port 0, configured from TOML text.

use std::time::Duration;

use gavel::app::{self, RunningServer};
use gavel::sim::{SimBuyer, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const SELLER_KEY: &str = "sk_acme";
pub const OTHER_SELLER_KEY: &str = "sk_other";
pub const ADMIN_TOKEN: &str = "admin-secret";

/// A buyer of the test campaign: a simulated endpoint plus any extra TOML for its `[[buyers]]` entry.
pub struct TestBuyer {
    pub id: &'static str,
    pub spec: SimBuyerSpec,
    /// Lines added to the buyer's table (keys first, then sub-tables).
    pub toml: String,
    /// Whether the buyer has a `notice_url` (its simulated endpoint's).
    pub notices: bool,
}

impl TestBuyer {
    pub fn new(id: &'static str, spec: SimBuyerSpec) -> TestBuyer {
        TestBuyer { id, spec, toml: String::new(), notices: false }
    }

    /// A buyer bidding a fixed price.
    pub fn bidding(id: &'static str, price: &str) -> TestBuyer {
        TestBuyer::new(id, SimBuyerSpec::bidding(price))
    }

    /// Gives the buyer a `notice_url`: win/loss notices go to its simulated endpoint.
    pub fn with_notices(mut self) -> TestBuyer {
        self.notices = true;
        self
    }

    pub fn with(mut self, toml: &str) -> TestBuyer {
        self.toml.push_str(toml);
        self.toml.push('\n');
        self
    }
}

/// A running server with its simulated buyers. Its HTTP calls are [`Api`]'s (through `Deref`).
pub struct TestApp {
    pub server: RunningServer,
    pub api: Api,
    /// Shared by every node of a cluster.
    pub sims: std::sync::Arc<Vec<(&'static str, SimBuyer)>>,
    /// The config file the server was started from (and reloads from); the data directory is beside it.
    pub config_path: std::path::PathBuf,
    pub root: std::sync::Arc<tempfile::TempDir>,
    /// Cluster mode: the exchange the server is a node of (dropped with the last node).
    pub exchange: Option<std::sync::Arc<crate::cluster_mode::Exchange>>,
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A server's address and the client that calls it: what a test needs to call a node, also one running as
/// its own process.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// A test's config and simulated buyers, before any server starts on them.
pub struct Prepared {
    pub root: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
    pub config_text: String,
    pub sims: Vec<(&'static str, SimBuyer)>,
    /// The buyers to fund once the server runs (those whose test does not state its billing).
    pub funded: Vec<&'static str>,
}

/// Extra TOML lines for the `[server]` table and for the `acme` seller's table.
#[derive(Default)]
pub struct Tuning {
    pub server: &'static str,
    pub acme: &'static str,
}

/// Starts simulated buyers and the server. `campaign_toml` is added to the `auto` campaign's table.
pub async fn spawn_app(campaign_toml: &str, buyers: Vec<TestBuyer>) -> TestApp {
    spawn_tuned_app(Tuning::default(), campaign_toml, buyers).await
}

/// [`spawn_app`] with extra server and seller settings (limits, rates).
pub async fn spawn_tuned_app(tuning: Tuning, campaign_toml: &str, buyers: Vec<TestBuyer>) -> TestApp {
    let prepared = prepare(tuning, campaign_toml, buyers).await;
    let Prepared { root, config_path, mut config_text, sims, funded } = prepared;
    // `GAVEL_TEST_CLUSTER=1` runs every API test against a node of a cluster (PostgreSQL and Redis) instead.
    let exchange = crate::cluster_mode::test_exchange().await;
    if let Some(exchange) = &exchange {
        config_text.push_str(&exchange.table());
    }
    std::fs::write(&config_path, &config_text).expect("config written");
    let config =
        gavel::config::load_file(&config_path).unwrap_or_else(|e| panic!("test config invalid: {e}\n{config_text}"));
    let server = app::start_node(config, node_options(&exchange)).await.expect("server starts");
    let api = Api { base: format!("http://{}", server.addr), http: http_client() };
    let app = TestApp {
        server,
        api,
        sims: std::sync::Arc::new(sims),
        config_path,
        root: std::sync::Arc::new(root),
        exchange,
    };
    if app.exchange.is_some() {
        crate::cluster_mode::wait_until_ready(&app).await;
    }
    for id in funded {
        app.deposit(id, "10000.00").await;
    }
    app
}

/// A single-node test's options: in cluster mode its node id.
fn node_options(exchange: &Option<std::sync::Arc<crate::cluster_mode::Exchange>>) -> app::NodeOptions {
    let node_id = exchange.as_ref().map(|_| "node-0".to_owned());
    app::NodeOptions { node_id, ..app::NodeOptions::default() }
}

/// Everything the ledger keeps, as text: the journal's files on one node, the exchange's rows in PostgreSQL in
/// cluster mode (tests grep it for what must never be there, or must be there once).
pub async fn ledger_text(app: &TestApp) -> String {
    match &app.exchange {
        Some(exchange) => {
            let (client, connection) =
                tokio_postgres::connect(&exchange.postgres, tokio_postgres::NoTls).await.expect("postgres");
            tokio::spawn(connection);
            let sql = format!("SELECT entry::text FROM gavel_{}.entries ORDER BY seq", exchange.name);
            let rows = client.query(&sql, &[]).await.expect("entries");
            rows.iter().map(|row| row.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
        }
        None => {
            let data_dir = app.config_path.parent().expect("root").join("data");
            let mut journal = Vec::new();
            for file in std::fs::read_dir(&data_dir).expect("data dir") {
                journal.extend(std::fs::read(file.expect("entry").path()).expect("read"));
            }
            String::from_utf8_lossy(&journal).into_owned()
        }
    }
}

/// The client tests talk to servers with.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

/// Starts the simulated buyers and writes nothing yet: the config text a test's servers will run on.
pub async fn prepare(tuning: Tuning, campaign_toml: &str, buyers: Vec<TestBuyer>) -> Prepared {
    let root = tempfile::tempdir().expect("temp dir");
    let data_dir = root.path().join("data");
    let mut sims = Vec::new();
    let mut buyer_tables = String::new();
    let mut funded = Vec::new();
    for buyer in buyers {
        // Buyers are prepaid by default, and a prepaid buyer with an empty wallet is never pinged: fund every
        // buyer whose test does not state its billing.
        if !buyer.toml.contains("billing") {
            funded.push(buyer.id);
        }
        let sim = SimBuyer::start(buyer.spec).await.expect("sim buyer starts");
        let ping_url = if buyer.toml.contains("fixed_price") {
            String::new()
        } else {
            format!("ping_url = \"{}\"\n", sim.ping_url())
        };
        let notice_url = if buyer.notices { format!("notice_url = \"{}\"\n", sim.notice_url()) } else { String::new() };
        buyer_tables.push_str(&format!(
            "[[buyers]]\nid = \"{id}\"\napi_key = \"bk_{id}\"\ncampaigns = [\"auto\"]\n{ping_url}post_url = \"{post}\"\n{notice_url}{extra}\n",
            id = buyer.id,
            post = sim.post_url(),
            extra = buyer.toml,
        ));
        sims.push((buyer.id, sim));
    }
    // The floor is "1.00" unless the test sets its own.
    let floor = if campaign_toml.contains("floor") { "" } else { "floor = \"1.00\"" };
    let config_text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data_dir}"
admin_token = "{ADMIN_TOKEN}"
max_body_bytes = 4096
{server_toml}

[[sellers]]
id = "acme"
api_key = "{SELLER_KEY}"
margin_percent = "10"
{acme_toml}

[[sellers]]
id = "other"
api_key = "{OTHER_SELLER_KEY}"

[[campaigns]]
id = "auto"
ping_fields = ["postal_code", "state", "age", "homeowner", "phone_sha256", "email_sha256"]
max_bid = "100.00"
{floor}
{campaign_toml}

{buyer_tables}"#,
        data_dir = data_dir.display(),
        server_toml = tuning.server,
        acme_toml = tuning.acme,
    );
    let config_path = root.path().join("gavel.toml");
    Prepared { root, config_path, config_text, sims, funded }
}

/// The `gavel` binary built for these tests.
pub const GAVEL: &str = env!("CARGO_BIN_EXE_gavel");

/// Starts `gavel <options> serve --config <config>` with its stdout dropped and its stderr as given.
pub fn serve_binary(options: &[&str], config: &std::path::Path, stderr: std::process::Stdio) -> std::process::Child {
    std::process::Command::new(GAVEL)
        .args(options)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("the gavel binary starts")
}

/// Waits up to 10 s for a server (the real binary, started by a test) to answer `GET /healthz`.
pub async fn wait_for_health(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {base} did not come up");
}

/// A lead whose ping fields are all present, without PII.
pub fn ping_lead() -> Value {
    json!({"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true})
}

/// The full lead matching [`ping_lead`].
pub fn full_lead() -> Value {
    json!({"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true,
           "first_name": "Ada", "last_name": "Lovelace", "phone": "(415) 867-0100", "email": "Ada@Example.com"})
}

impl TestApp {
    /// Stops the server gracefully and starts it again on the same config and data directory (a new port).
    pub async fn restart(self) -> TestApp {
        let TestApp { server, api, sims, config_path, root, exchange } = self;
        server.shutdown().await;
        let config = gavel::config::load_file(&config_path).expect("same config");
        let server = app::start_node(config, node_options(&exchange)).await.expect("server restarts");
        let api = Api { base: format!("http://{}", server.addr), http: api.http };
        let app = TestApp { server, api, sims, config_path, root, exchange };
        if app.exchange.is_some() {
            crate::cluster_mode::wait_until_ready(&app).await;
        }
        app
    }

    /// The config file's text now.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config_path).expect("config readable")
    }

    /// Rewrites the config file (the server notices on reload or restart).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("config written");
    }

    pub fn sim(&self, id: &str) -> &SimBuyer {
        &self.sims.iter().find(|(sid, _)| *sid == id).expect("sim by id").1
    }
}

impl Api {
    /// POSTs JSON with a bearer key; returns the status and the body (Null when not JSON).
    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs JSON with a bearer key and an `Idempotency-Key`; returns the status, the body and whether the
    /// answer says it repeats an earlier one (`Idempotent-Replayed: true`).
    pub async fn post_keyed(
        &self,
        path: &str,
        key: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> (StatusCode, Value, bool) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        (status, response.json().await.unwrap_or(Value::Null), replayed)
    }

    pub async fn get_json(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let response =
            self.http.get(format!("{}{path}", self.base)).bearer_auth(key).send().await.expect("request sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Pings the `auto` campaign with extra envelope fields merged in.
    pub async fn ping_with(&self, lead: Value, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({"campaign": "auto", "lead": lead});
        merge(&mut body, extra);
        self.post_json("/v1/ping", SELLER_KEY, &body).await
    }

    pub async fn ping(&self) -> Value {
        let (status, body) = self.ping_with(ping_lead(), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn post(&self, ping_id: &str, lead: Value, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({"ping_id": ping_id, "lead": lead});
        merge(&mut body, extra);
        self.post_json("/v1/post", SELLER_KEY, &body).await
    }

    /// Deposits into a buyer's wallet through the operator API.
    pub async fn deposit(&self, buyer: &str, amount: &str) -> Value {
        let path = format!("/admin/buyers/{buyer}/deposits");
        let (status, body) = self.post_json(&path, ADMIN_TOKEN, &json!({"amount": amount, "reference": "test"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// The operator's view of a buyer.
    pub async fn buyer(&self, id: &str) -> Value {
        let (status, body) = self.get_json(&format!("/admin/buyers/{id}"), ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn audit(&self, ping_id: &str) -> Value {
        let (status, body) = self.get_json(&format!("/admin/pings/{ping_id}"), ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The audit entry of one buyer in an auction.
    pub async fn outcome_of(&self, ping_id: &str, buyer: &str) -> Value {
        let audit = self.audit(ping_id).await;
        audit["buyers"].as_array().unwrap().iter().find(|b| b["buyer"] == buyer).cloned().expect("buyer in audit")
    }
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), extra) {
        target.extend(extra);
    }
}

impl TestApp {
    /// Stops the server gracefully and returns its engine, to look at what shutdown left behind.
    pub async fn stop(self) -> std::sync::Arc<gavel::engine::Engine> {
        let engine = std::sync::Arc::clone(&self.server.engine);
        self.server.shutdown().await;
        engine
    }
}
