//! The `cluster` mode (issue 18): the same open-loop load against one node and against a cluster of N nodes
//! sharing PostgreSQL and Redis, in one run, the seller's requests spread round-robin over the nodes; then a
//! burst of direct posts at a buyer with a daily cap, whose deliveries must never pass it.
//!
//! Every phase is timed from each request's scheduled send time, as everywhere in this crate; the floor (the
//! raw fan-out) runs in the same sitting. The cluster's nodes are child processes of one generated config with
//! a `[cluster]` table naming a fresh exchange (`lt<random>`), dropped from both stores at the end. The stores
//! are `GAVEL_POSTGRES_URL` and `GAVEL_REDIS_URL`, by default the machine's own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gavel::sim::SimBuyer;
use serde::Serialize;

use crate::baseline::FanOut;
use crate::engine::{self, Server};
use crate::load::{self, OpStats, PhaseResult};
use crate::plot::Kind;
use crate::progress::Progress;
use crate::report::{PhaseRow, Report};
use crate::run::{first_kind, series, start_buyers, Options, Runtimes};
use crate::scenario::{Op, Scenario};
use crate::seller::Seller;

/// What the command line chose for the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    /// The capped buyer's daily cap in the cap phase.
    pub cap: u32,
    /// Direct posts sent in the cap phase (well over the cap).
    pub cap_posts: u64,
}

/// The cluster's figures beside the single node's.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterFigures {
    pub nodes: usize,
    pub rate: f64,
    pub floor_p50_us: f64,
    pub single_p50_us: f64,
    pub cluster_p50_us: f64,
    pub floor_p99_us: f64,
    pub single_p99_us: f64,
    pub cluster_p99_us: f64,
    /// Cluster p50 less single-node p50: what the shared stores add to a ping (target ≤ 150 µs).
    pub added_p50_us: f64,
    pub single_errors: u64,
    pub cluster_errors: u64,
    /// Where the added time goes, from the engines' own `/metrics` (µs): the single node's and the first
    /// cluster node's `gavel_engine_overhead_seconds` p50, and that node's Redis hold round trip p50
    /// (`gavel_store_seconds{store="redis",op="hold"}`: the one store call on a ping's answer path).
    pub single_overhead_p50_us: Option<f64>,
    pub cluster_overhead_p50_us: Option<f64>,
    pub redis_hold_p50_us: Option<f64>,
    /// The capped buyer's limit, the leads the cluster sold it (posts it accepted, in every phase: a scenario
    /// that posts sells to it before the cap phase), and its `used` as each node reports it.
    pub cap: u32,
    pub cap_delivered: u64,
    pub cap_used_by_node: Vec<u64>,
}

/// A fresh exchange on the machine's stores (`GAVEL_POSTGRES_URL` and `GAVEL_REDIS_URL`, by default the
/// machine's own), removed from both however the run ends.
pub struct Exchange {
    name: String,
    postgres: String,
    redis: String,
}

impl Exchange {
    /// A new exchange, `lt<random>`.
    pub fn fresh() -> Exchange {
        let postgres =
            std::env::var("GAVEL_POSTGRES_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
        let redis = std::env::var("GAVEL_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
        let name = format!("lt{:08x}", std::process::id() ^ 0x5eed ^ nanos);
        Exchange { name, postgres, redis }
    }

    /// Its name, as the stores know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `[cluster]` table of a node of this exchange (`node_id` set, or left to `--node-id`).
    pub fn table(&self, node_id: Option<&str>) -> String {
        let node = node_id.map(|id| format!("node_id = \"{id}\"\n")).unwrap_or_default();
        format!(
            "\n[cluster]\nname = \"{}\"\n{node}redis_url = \"{}\"\npostgres_url = \"{}\"\n",
            self.name, self.redis, self.postgres
        )
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(&self.postgres)
            .args(["-q", "-c", &format!("DROP SCHEMA IF EXISTS gavel_{} CASCADE", self.name)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let pattern = format!("gavel:{}:*", self.name);
        let keys =
            std::process::Command::new("redis-cli").args(["-u", &self.redis, "--scan", "--pattern", &pattern]).output();
        if let Ok(keys) = keys {
            for key in String::from_utf8_lossy(&keys.stdout).lines() {
                let _ = std::process::Command::new("redis-cli")
                    .args(["-u", &self.redis, "DEL", key])
                    .stdout(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// `cluster`: floor, one node, N nodes at the scenario's rate; then the cap phase.
pub async fn cluster(
    scenario: &Scenario,
    options: &Options,
    cluster: &ClusterOptions,
    runtimes: &Runtimes,
    progress: &Progress,
) -> Result<Report, String> {
    let exchange = Exchange::fresh();
    let sims = start_buyers(scenario, &runtimes.buyers, false).await?;
    let addrs: Vec<SocketAddr> = sims.iter().map(SimBuyer::addr).collect();
    let legs: Vec<(SocketAddr, Duration)> = addrs.iter().zip(&scenario.buyers).map(|(a, p)| (*a, p.timeout)).collect();
    let floor = Arc::new(FanOut::new(&legs, scenario.deadline));
    let rate = options.rate.unwrap_or(scenario.rate);

    let single = engine::start_child(&options.source, scenario, &addrs, &options.child).await?;
    let cap_table = format!("\n[buyers.caps]\ndaily = {}\n", cluster.cap);
    let cluster_table = exchange.table(None);
    let mut nodes = Vec::new();
    for index in 0..cluster.nodes {
        let extra = format!("{cap_table}{cluster_table}");
        nodes.push(
            engine::start_node(&options.source, scenario, &addrs, &extra, &format!("node-{index}"), &options.child)
                .await?,
        );
    }
    let mut report = Report::new(
        scenario,
        options.command.clone(),
        std::thread::available_parallelism().map_or(1, usize::from),
        vec![
            format!("single node: {}", single.description),
            format!("cluster: {} nodes like it on PostgreSQL and Redis (exchange {})", nodes.len(), exchange.name),
            "generator, raw fan-out (floor) and simulated buyers: this process".into(),
        ],
    );

    let single_sellers = vec![Arc::new(Seller::new(single.addr, scenario.deadline))];
    let cluster_sellers: Vec<Arc<Seller>> =
        nodes.iter().map(|node| Arc::new(Seller::new(node.addr, scenario.deadline))).collect();
    let (mut floor_stats, mut single_stats, mut cluster_stats) =
        (OpStats::default(), OpStats::default(), OpStats::default());
    // The capped buyer's leads from the cluster: a scenario that posts sells to it in the ping phases too
    // (the single node's sales to the same simulated buyer are not the cluster's, and its buyer has no cap).
    let capped = sims.last().ok_or("the scenario has no buyers")?;
    let mut delivered = 0;
    for round in 1..=scenario.rounds {
        let label = format!("floor#{round}");
        let result = phase(scenario, rate, progress, &label, |n, due, recorder| {
            let floor = Arc::clone(&floor);
            let _ = n;
            async move { floor.timed(due, recorder).await }
        })
        .await;
        merge(&mut floor_stats, &result, &mut report, &label, rate);
        for (name, sellers, stats) in
            [("single", &single_sellers, &mut single_stats), ("cluster", &cluster_sellers, &mut cluster_stats)]
        {
            let label = format!("{name}#{round}");
            let before = capped.accepted_count();
            let mix = scenario.mix;
            let result = phase(scenario, rate, progress, &label, |n, due, recorder| {
                let seller = Arc::clone(&sellers[n as usize % sellers.len()]);
                async move { seller.run(mix.op(n), n, due, recorder).await }
            })
            .await;
            if name == "cluster" {
                delivered += capped.accepted_count() - before;
            }
            merge(stats, &result, &mut report, &label, rate);
        }
    }
    let single_metrics = metrics_text(&single).await;
    let node_metrics = metrics_text(&nodes[0]).await;
    report.distributions.push(series(Kind::Floor, "floor", rate, &floor_stats));
    report.distributions.push(series(Kind::Engine, "single", rate, &single_stats));
    report.distributions.push(series(Kind::Engine, &format!("cluster-{}", nodes.len()), rate, &cluster_stats));

    // The cap phase: direct posts spread over the nodes, at the last buyer (the capped one) among the others.
    // First the ping phases' unposted bids expire (the generated config's bids live 10 s): until then their
    // holds count against the cap, as they must.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = capped.accepted_count();
    let label = "cap";
    let posts = cluster.cap_posts;
    let result = load::open_loop(rate, posts, progress.phase(label), |n, due, recorder| {
        let seller = Arc::clone(&cluster_sellers[n as usize % cluster_sellers.len()]);
        async move { seller.run(Op::DirectPost, n, due, recorder).await }
    })
    .await;
    report.phases.extend(PhaseRow::rows(label, rate, &result));
    delivered += capped.accepted_count() - before;
    let mut used = Vec::new();
    for node in &nodes {
        used.push(capped_used(node, scenario.buyers.len() - 1).await?);
    }

    let p = |stats: &OpStats, q: f64| stats.latency.value_at_quantile(q) as f64;
    report.cluster = Some(ClusterFigures {
        nodes: nodes.len(),
        rate,
        floor_p50_us: p(&floor_stats, 0.5),
        single_p50_us: p(&single_stats, 0.5),
        cluster_p50_us: p(&cluster_stats, 0.5),
        floor_p99_us: p(&floor_stats, 0.99),
        single_p99_us: p(&single_stats, 0.99),
        cluster_p99_us: p(&cluster_stats, 0.99),
        added_p50_us: p(&cluster_stats, 0.5) - p(&single_stats, 0.5),
        single_errors: single_stats.errors,
        cluster_errors: cluster_stats.errors,
        single_overhead_p50_us: p50_of(&single_metrics, "gavel_engine_overhead_hdr_seconds{", &[]),
        cluster_overhead_p50_us: p50_of(&node_metrics, "gavel_engine_overhead_hdr_seconds{", &[]),
        redis_hold_p50_us: p50_of(&node_metrics, "gavel_store_hdr_seconds{", &["store=\"redis\"", "op=\"hold\""]),
        cap: cluster.cap,
        cap_delivered: delivered,
        cap_used_by_node: used,
    });
    drop(nodes);
    drop(single);
    drop(exchange);
    Ok(report)
}

/// A warm-up and a measured open-loop phase of the scenario's length at `rate`.
async fn phase<F, Fut>(scenario: &Scenario, rate: f64, progress: &Progress, label: &str, make: F) -> PhaseResult
where
    F: Fn(u64, tokio::time::Instant, Arc<load::Recorder>) -> Fut + Clone,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if !scenario.warmup.is_zero() {
        let requests = scenario.requests_at(rate, scenario.warmup);
        load::open_loop(rate, requests, progress.warmup(label), make.clone()).await;
    }
    load::open_loop(rate, scenario.requests_at(rate, scenario.duration), progress.phase(label), make).await
}

fn merge(stats: &mut OpStats, result: &PhaseResult, report: &mut Report, label: &str, rate: f64) {
    if let Some(first) = first_kind(result) {
        stats.merge(first);
    }
    report.phases.extend(PhaseRow::rows(label, rate, result));
}

/// A node's `/metrics` text (empty if it does not answer).
async fn metrics_text(node: &Server) -> String {
    let pool = crate::conn::ConnPool::new(node.addr);
    match pool.get("/metrics", Duration::from_secs(5)).await {
        Ok(answer) => String::from_utf8_lossy(&answer.body).into_owned(),
        Err(_) => String::new(),
    }
}

/// The p50 (µs) of the first HDR summary series of `family` whose labels include every one of `labels`.
fn p50_of(metrics: &str, family: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (label_text, value) = line.strip_prefix(family)?.split_once("} ")?;
        let wanted = label_text.contains("quantile=\"0.5\"") && labels.iter().all(|l| label_text.contains(l));
        wanted.then(|| value.trim().parse::<f64>().ok().map(|s| s * 1e6)).flatten()
    })
}

/// The capped buyer's `caps.daily.used` as one node reports it (`/admin/buyers/b<index>`).
async fn capped_used(node: &Server, index: usize) -> Result<u64, String> {
    let pool = crate::conn::ConnPool::new(node.addr);
    let path = format!("/admin/buyers/b{index}");
    let token =
        hyper::header::HeaderValue::from_str(&format!("Bearer {}", engine::ADMIN_TOKEN)).map_err(|e| e.to_string())?;
    let answer = pool
        .get_with(&path, &[("authorization", token)], Duration::from_secs(5))
        .await
        .map_err(|e| format!("{path}: {e:?}"))?;
    let view: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| format!("{path}: {e}"))?;
    view["caps"]["daily"]["used"].as_u64().ok_or_else(|| format!("{path}: no caps.daily.used in {view}"))
}
