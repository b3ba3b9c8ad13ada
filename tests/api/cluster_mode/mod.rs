//! Cluster mode (API.md section 9) through real nodes: several servers in this process sharing PostgreSQL and
//! Redis, simulated buyers, real HTTP. Each test runs its own exchange — its own PostgreSQL schema
//! (`gavel_<name>`) and Redis keys (`gavel:<name>:`) on the machine's shared servers, dropped at the end — so
//! tests never see each other. Tests that stop, kill or empty a store start private instances instead
//! (`stores.rs`).

mod any_node;
mod exact;
mod faults;
mod proxy;
pub mod stores;

use gavel::app::{self, NodeOptions};
use gavel::sim::SimBuyer;
use rand::Rng;

use crate::helpers::{http_client, prepare, Api, TestApp, TestBuyer, Tuning};

/// The shared stores the cluster tests use, unless `GAVEL_TEST_POSTGRES_URL` / `GAVEL_TEST_REDIS_URL` say
/// otherwise.
pub fn postgres_url() -> String {
    std::env::var("GAVEL_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("GAVEL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Fails the test — never skips it — with what to install when a store is missing.
pub async fn require_stores(postgres: &str, redis: &str) {
    let pg = tokio_postgres::connect(postgres, tokio_postgres::NoTls).await;
    assert!(
        pg.is_ok(),
        "cluster-mode tests need PostgreSQL (15 or later) at {postgres}: install it (apt install postgresql), start \
         it, allow trust auth on 127.0.0.1, or point GAVEL_TEST_POSTGRES_URL at one; see README, Testing"
    );
    let client = redis::Client::open(redis).expect("redis url");
    let connected = client.get_multiplexed_async_connection().await;
    assert!(
        connected.is_ok(),
        "cluster-mode tests need Redis (7 or later) at {redis}: install it (apt install redis-server), start it, or \
         point GAVEL_TEST_REDIS_URL at one; see README, Testing"
    );
}

/// A fresh exchange name for one test.
pub fn exchange_name() -> String {
    format!("t{:012x}", rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff)
}

/// One test's exchange on the stores; its schema and keys are dropped with it.
pub struct Exchange {
    pub name: String,
    pub postgres: String,
    pub redis: String,
}

impl Exchange {
    /// Its `[cluster]` table.
    pub fn table(&self) -> String {
        cluster_table(&self.name, &self.postgres, &self.redis)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        drop_exchange(&self.name, &self.postgres, &self.redis);
    }
}

/// When `GAVEL_TEST_CLUSTER` is set, a fresh exchange on the shared stores for a single-node test: CI runs the
/// whole API suite once per mode this way.
pub async fn test_exchange() -> Option<std::sync::Arc<Exchange>> {
    std::env::var_os("GAVEL_TEST_CLUSTER")?;
    let (postgres, redis) = (postgres_url(), redis_url());
    require_stores(&postgres, &redis).await;
    Some(std::sync::Arc::new(Exchange { name: exchange_name(), postgres, redis }))
}

/// Several nodes of one exchange; the exchange's schema and keys are dropped with it.
pub struct Cluster {
    pub nodes: Vec<TestApp>,
    pub name: String,
    _exchange: std::sync::Arc<Exchange>,
}

impl Cluster {
    pub fn node(&self, index: usize) -> &TestApp {
        &self.nodes[index]
    }

    pub fn sim(&self, id: &str) -> &SimBuyer {
        self.nodes[0].sim(id)
    }
}

/// Removes an exchange's schema and keys (best effort; the names are the test's own).
pub fn drop_exchange(name: &str, postgres: &str, redis: &str) {
    let _ = std::process::Command::new("psql")
        .arg(postgres)
        .args(["-q", "-c", &format!("DROP SCHEMA IF EXISTS gavel_{name} CASCADE")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if let Ok(client) = redis::Client::open(redis) {
        if let Ok(mut connection) = client.get_connection() {
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(format!("gavel:{name}:*")).query(&mut connection).unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut connection);
            }
        }
    }
}

/// The `[cluster]` table of an exchange on these stores.
pub fn cluster_table(name: &str, postgres: &str, redis: &str) -> String {
    format!("\n[cluster]\nname = \"{name}\"\nredis_url = \"{redis}\"\npostgres_url = \"{postgres}\"\n")
}

/// `nodes` nodes of a fresh exchange on the shared stores, every buyer funded once (10,000.00).
pub async fn spawn_cluster(nodes: usize, campaign_toml: &str, buyers: Vec<TestBuyer>) -> Cluster {
    spawn_cluster_on(nodes, Tuning::default(), campaign_toml, buyers, &postgres_url(), &redis_url()).await
}

/// [`spawn_cluster`] with server and seller settings, on the given stores.
pub async fn spawn_cluster_on(
    nodes: usize,
    tuning: Tuning,
    campaign_toml: &str,
    buyers: Vec<TestBuyer>,
    postgres: &str,
    redis: &str,
) -> Cluster {
    require_stores(postgres, redis).await;
    let name = exchange_name();
    let prepared = prepare(tuning, campaign_toml, buyers).await;
    let config_text = format!("{}{}", prepared.config_text, cluster_table(&name, postgres, redis));
    std::fs::write(&prepared.config_path, &config_text).expect("config written");
    let root = std::sync::Arc::new(prepared.root);
    let sims = std::sync::Arc::new(prepared.sims);
    let exchange =
        std::sync::Arc::new(Exchange { name: name.clone(), postgres: postgres.to_owned(), redis: redis.to_owned() });
    let mut cluster = Cluster { nodes: Vec::new(), name, _exchange: std::sync::Arc::clone(&exchange) };
    for index in 0..nodes {
        let config = gavel::config::load_file(&prepared.config_path).expect("cluster config loads");
        let options = NodeOptions {
            listen: None,
            node_id: Some(format!("node-{index}")),
            data_dir: Some(root.path().join(format!("data-{index}"))),
        };
        let server = app::start_node(config, options).await.expect("node starts");
        let api = Api { base: format!("http://{}", server.addr), http: http_client() };
        cluster.nodes.push(TestApp {
            server,
            api,
            sims: std::sync::Arc::clone(&sims),
            config_path: prepared.config_path.clone(),
            root: std::sync::Arc::clone(&root),
            exchange: Some(std::sync::Arc::clone(&exchange)),
        });
    }
    for node in &cluster.nodes {
        wait_until_ready(node).await;
    }
    for id in &prepared.funded {
        cluster.nodes[0].deposit(id, "10000.00").await;
    }
    // A read catches a node's books up: from here every node's gates see the deposits.
    for node in &cluster.nodes {
        let (status, _) = node.get_json("/admin/ledger/accounts", crate::helpers::ADMIN_TOKEN).await;
        assert_eq!(status, 200, "{} reads its books", node.base);
    }
    cluster
}

/// Waits up to 10 s for a node to answer `/readyz` 200 (its Redis state in place), on connections it closes
/// (a test of the connection cap counts every open one).
pub async fn wait_until_ready(node: &Api) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    for _ in 0..200 {
        if http.get(format!("{}/readyz", node.base)).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("node at {} never became ready", node.base);
}
