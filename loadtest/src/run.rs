//! The three modes: `run` (floor and engine phases alternating, then the throughput runs, then the ratios),
//! `floor` (the raw baseline alone) and `max-rate` (a bounded search for the highest sustainable rate).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use gavel::sim::{SimBuyer, SimBuyerSpec};
use tokio::runtime::Handle;

use crate::baseline::{EchoServer, FanOut};
use crate::conn::ConnPool;
use crate::engine::{self, ChildOptions, Engine, EngineSource};
use crate::load::{self, OpStats, PhaseResult};
use crate::report::{PhaseRow, Ratios, Report, ThroughputRow};
use crate::scenario::Scenario;
use crate::seller::Seller;

/// What the command line chose.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: EngineSource,
    pub child: ChildOptions,
    /// Overrides the scenario's rate.
    pub rate: Option<f64>,
    /// The command as typed, for the report.
    pub command: String,
}

/// The runtimes the parts run on, besides the generator's own (the caller's current-thread runtime).
#[derive(Clone)]
pub struct Runtimes {
    /// Simulated buyers.
    pub buyers: Handle,
    pub buyer_threads: usize,
    /// The echo fan-out server.
    pub echo: Handle,
    pub echo_threads: usize,
}

/// `run`: alternating floor and engine phases, the throughput runs, and the ratios.
pub async fn run(scenario: &Scenario, options: &Options, runtimes: &Runtimes) -> Result<Report, String> {
    let sims = start_buyers(scenario, &runtimes.buyers, matches!(options.source, EngineSource::Target(_))).await?;
    let addrs: Vec<SocketAddr> = sims.iter().map(SimBuyer::addr).collect();
    let engine = start_engine(scenario, options, &addrs).await?;
    let seller = Arc::new(Seller::new(engine.addr, scenario.deadline));
    let floor = Arc::new(FanOut::new(&legs(scenario, &addrs), scenario.deadline));
    let rate = options.rate.unwrap_or(scenario.rate);

    let mut report = new_report(scenario, options, runtimes, Some(&engine));
    let (mut floor_all, mut pings_all) = (OpStats::default(), OpStats::default());
    for round in 1..=scenario.rounds {
        let result = floor_phase(scenario, rate, &floor).await;
        if let Some(stats) = result.ops.get("fanout") {
            floor_all.merge(stats);
        }
        report.phases.extend(PhaseRow::rows(&format!("floor#{round}"), rate, &result));
        let result = engine_phase(scenario, rate, scenario.duration, &seller).await;
        if let Some(stats) = result.ops.get("ping") {
            pings_all.merge(stats);
        }
        report.phases.extend(PhaseRow::rows(&format!("engine#{round}"), rate, &result));
    }
    // Read before the saturating runs, so the engine's own figures describe the open-loop phases.
    report.engine_metrics = engine_metrics(seller.pool()).await;
    report.throughput = throughput(scenario, runtimes, &sims, &seller).await?;
    report.ratios = Some(Ratios::compute(
        Some(&floor_all).filter(|s| s.ok > 0),
        Some(&pings_all).filter(|s| s.ok + s.errors > 0),
        scenario.deadline,
        &report.throughput,
    ));
    drop(engine);
    Ok(report)
}

/// `floor`: the raw fan-out baseline alone.
pub async fn floor(scenario: &Scenario, options: &Options, runtimes: &Runtimes) -> Result<Report, String> {
    let sims = start_buyers(scenario, &runtimes.buyers, false).await?;
    let addrs: Vec<SocketAddr> = sims.iter().map(SimBuyer::addr).collect();
    let fan_out = Arc::new(FanOut::new(&legs(scenario, &addrs), scenario.deadline));
    let rate = options.rate.unwrap_or(scenario.rate);
    let mut report = new_report(scenario, options, runtimes, None);
    for round in 1..=scenario.rounds {
        let result = floor_phase(scenario, rate, &fan_out).await;
        report.phases.extend(PhaseRow::rows(&format!("floor#{round}"), rate, &result));
    }
    Ok(report)
}

/// `max-rate`: doubles the rate while the engine keeps up (ping p99 under the deadline, under 1% errors,
/// at least 90% of the rate achieved), then halves the gap between the best pass and the first failure.
/// Bounded by the scenario's step count, step length, request cap and ceiling.
pub async fn max_rate(scenario: &Scenario, options: &Options, runtimes: &Runtimes) -> Result<Report, String> {
    let sims = start_buyers(scenario, &runtimes.buyers, matches!(options.source, EngineSource::Target(_))).await?;
    let addrs: Vec<SocketAddr> = sims.iter().map(SimBuyer::addr).collect();
    let engine = start_engine(scenario, options, &addrs).await?;
    let seller = Arc::new(Seller::new(engine.addr, scenario.deadline));
    let mut report = new_report(scenario, options, runtimes, Some(&engine));
    let bounds = scenario.max_rate;
    let (mut best, mut failed): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = options.rate.unwrap_or(scenario.rate).min(bounds.ceiling);
    for _ in 0..bounds.steps {
        let result = engine_phase(scenario, rate, bounds.step, &seller).await;
        let passed = sustained(scenario, rate, &result);
        let mut rows = PhaseRow::rows(&format!("max-rate@{rate:.0}"), rate, &result);
        for row in &mut rows {
            row.phase.push_str(if passed { " ok" } else { " no" });
        }
        report.phases.extend(rows);
        if passed {
            best = Some(rate);
        } else {
            failed = Some(rate);
        }
        let next = match (best, failed) {
            (Some(good), Some(bad)) => (good + bad) / 2.0,
            (Some(good), None) => (good * 2.0).min(bounds.ceiling),
            (None, _) => rate / 2.0,
        };
        // Stop once the bracket is within 5%, or when the ceiling has passed.
        if (next - rate).abs() <= rate * 0.05 || next < 1.0 {
            break;
        }
        rate = next;
    }
    report.max_rate = best;
    report.engine_metrics = engine_metrics(seller.pool()).await;
    drop(engine);
    Ok(report)
}

/// A step passes when every request kind kept its p99 under the deadline, errors stayed under 1%, and the
/// first requests (pings or direct posts; a post only follows its ping) were answered at 90% of the rate.
fn sustained(scenario: &Scenario, rate: f64, result: &PhaseResult) -> bool {
    let (ok, errors) = result.ops.values().fold((0, 0), |(ok, errors), s| (ok + s.ok, errors + s.errors));
    let deadline_us = u64::try_from(scenario.deadline.as_micros()).unwrap_or(u64::MAX);
    let p99_ok = result.ops.values().all(|s| s.latency.is_empty() || s.latency.value_at_quantile(0.99) < deadline_us);
    let errors_ok = (errors as f64) < 0.01 * (ok + errors).max(1) as f64;
    let first_answered = ["ping", "direct"].iter().filter_map(|op| result.ops.get(op)).map(|s| s.ok).sum::<u64>();
    let achieved = if result.span.is_zero() { 0.0 } else { first_answered as f64 / result.span.as_secs_f64() };
    p99_ok && errors_ok && achieved >= 0.9 * rate
}

async fn floor_phase(scenario: &Scenario, rate: f64, fan_out: &Arc<FanOut>) -> PhaseResult {
    let go = |requests| {
        let fan_out = Arc::clone(fan_out);
        load::open_loop(rate, requests, move |_, due, recorder| Arc::clone(&fan_out).timed(due, recorder))
    };
    if !scenario.warmup.is_zero() {
        go(scenario.requests_at(rate, scenario.warmup)).await;
    }
    go(scenario.requests_at(rate, scenario.duration)).await
}

async fn engine_phase(scenario: &Scenario, rate: f64, duration: Duration, seller: &Arc<Seller>) -> PhaseResult {
    let mix = scenario.mix;
    let go = |requests| {
        let seller = Arc::clone(seller);
        load::open_loop(rate, requests, move |n, due, recorder| Arc::clone(&seller).run(mix.op(n), n, due, recorder))
    };
    if !scenario.warmup.is_zero() {
        go(scenario.requests_at(rate, scenario.warmup)).await;
    }
    go(scenario.requests_at(rate, duration)).await
}

/// Closed-loop runs, echo fan-out and engine alternating, with every buyer answering at once (a bid): both
/// sides are then bound by their own work, not by the buyers' latency. Buyers get their specs back after.
async fn throughput(
    scenario: &Scenario,
    runtimes: &Runtimes,
    sims: &[SimBuyer],
    seller: &Arc<Seller>,
) -> Result<Vec<ThroughputRow>, String> {
    for (index, sim) in sims.iter().enumerate() {
        sim.set_spec(SimBuyerSpec { record: false, seed: index as u64 + 1, ..SimBuyerSpec::bidding("10.00") });
    }
    let addrs: Vec<SocketAddr> = sims.iter().map(SimBuyer::addr).collect();
    let fan_out = Arc::new(FanOut::new(&legs(scenario, &addrs), scenario.deadline));
    let echo = runtimes.echo.spawn(EchoServer::start(fan_out)).await.map_err(|e| e.to_string())?;
    let echo = echo.map_err(|e| format!("cannot start the echo fan-out server: {e}"))?;
    let echo_pool = Arc::new(ConnPool::new(echo.addr));
    let body = bytes::Bytes::from_static(br#"{"ping": true}"#);
    let limit = scenario.deadline + Duration::from_secs(2);
    let settings = scenario.throughput;
    let mut rows = Vec::new();
    for round in 1..=scenario.rounds {
        let pool = Arc::clone(&echo_pool);
        let body = body.clone();
        let before = buyer_requests(sims);
        let saturation = load::closed_loop(settings.concurrency, settings.duration, move || {
            let (pool, body) = (Arc::clone(&pool), body.clone());
            async move { matches!(pool.post("/echo", &[], body, limit).await, Ok(a) if a.status.is_success()) }
        })
        .await;
        rows.push(throughput_row(
            format!("echo#{round}"),
            settings.concurrency,
            saturation,
            buyer_requests(sims) - before,
        ));

        let seller = Arc::clone(seller);
        let before = buyer_requests(sims);
        let saturation = load::closed_loop(settings.concurrency, settings.duration, move || {
            let seller = Arc::clone(&seller);
            async move { seller.ping_once().await }
        })
        .await;
        rows.push(throughput_row(
            format!("engine#{round}"),
            settings.concurrency,
            saturation,
            buyer_requests(sims) - before,
        ));
    }
    drop(echo);
    for (sim, plan) in sims.iter().zip(&scenario.buyers) {
        sim.set_spec(plan.spec.clone());
    }
    Ok(rows)
}

fn throughput_row(
    phase: String,
    concurrency: usize,
    saturation: load::Saturation,
    buyer_requests: u64,
) -> ThroughputRow {
    let seconds = saturation.elapsed.as_secs_f64();
    let exchanges = saturation.ok + buyer_requests;
    ThroughputRow {
        phase,
        concurrency,
        ok: saturation.ok,
        errors: saturation.errors,
        seconds,
        requests_per_s: saturation.ok as f64 / seconds,
        exchanges,
        exchanges_per_s: exchanges as f64 / seconds,
    }
}

/// Every request the simulated buyers have received so far.
fn buyer_requests(sims: &[SimBuyer]) -> u64 {
    sims.iter().map(|s| s.ping_count() + s.post_count()).sum()
}

/// Each buyer's address and `timeout_ms`, for the raw fan-out.
fn legs(scenario: &Scenario, addrs: &[SocketAddr]) -> Vec<(SocketAddr, Duration)> {
    addrs.iter().zip(&scenario.buyers).map(|(addr, plan)| (*addr, plan.timeout)).collect()
}

/// Starts the simulated buyers on their runtime: on ports the OS picks, or, for a running engine, on
/// `buyer_port_base + i` as `gavel-loadtest config` wrote them into its config.
pub async fn start_buyers(scenario: &Scenario, runtime: &Handle, fixed_ports: bool) -> Result<Vec<SimBuyer>, String> {
    let mut sims = Vec::with_capacity(scenario.buyers.len());
    for (index, plan) in scenario.buyers.iter().enumerate() {
        let port = if fixed_ports { buyer_port(scenario, index)? } else { 0 };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = runtime.spawn(SimBuyer::start_on(addr, plan.spec.clone())).await.map_err(|e| e.to_string())?;
        sims.push(started.map_err(|e| format!("cannot start simulated buyer {index} on {addr}: {e}"))?);
    }
    Ok(sims)
}

/// The fixed port of buyer `index` when targeting a running engine.
pub fn buyer_port(scenario: &Scenario, index: usize) -> Result<u16, String> {
    u16::try_from(usize::from(scenario.buyer_port_base) + index)
        .map_err(|_| "buyer_port_base + buyers exceeds 65535".to_owned())
}

async fn start_engine(scenario: &Scenario, options: &Options, addrs: &[SocketAddr]) -> Result<Engine, String> {
    match &options.source {
        EngineSource::Target(addr) => engine::running(*addr).await,
        source => engine::start_child(source, scenario, addrs, &options.child).await,
    }
}

fn new_report(scenario: &Scenario, options: &Options, runtimes: &Runtimes, engine: Option<&Engine>) -> Report {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut layout = Vec::new();
    if let Some(engine) = engine {
        layout.push(format!("engine: {}", engine.description));
    }
    layout.push(format!(
        "simulated buyers: {} HTTP servers on loopback in this process, on a runtime of {} worker thread(s)",
        scenario.buyers.len(),
        runtimes.buyer_threads
    ));
    layout.push(
        "generator and raw fan-out (floor): this process's main thread (one current-thread runtime), fed by a \
         schedule thread"
            .into(),
    );
    layout
        .push(format!("echo fan-out server: this process, on a runtime of {} worker thread(s)", runtimes.echo_threads));
    if options.child.cpus.is_none() {
        layout.push(format!(
            "no CPU pinning: all of the above share this machine's {cpus} CPUs (pin the engine with --engine-cpus, \
             the rest by running gavel-loadtest under taskset)"
        ));
    }
    Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        command: options.command.clone(),
        cpus,
        layout,
        buyers: scenario.buyers.len(),
        deadline_ms: scenario.deadline.as_millis() as u64,
        phases: Vec::new(),
        throughput: Vec::new(),
        ratios: None,
        engine_metrics: BTreeMap::new(),
        max_rate: None,
    }
}

/// The engine's own HDR quantiles from `/metrics` (µs): auction time and engine overhead. Empty when the
/// engine does not export them.
async fn engine_metrics(pool: &ConnPool) -> BTreeMap<String, f64> {
    let Ok(answer) = pool.get("/metrics", Duration::from_secs(5)).await else { return BTreeMap::new() };
    parse_quantiles(&String::from_utf8_lossy(&answer.body))
}

/// Reads `gavel_auction_hdr_seconds` and `gavel_engine_overhead_hdr_seconds` quantiles out of Prometheus text.
pub fn parse_quantiles(text: &str) -> BTreeMap<String, f64> {
    let families =
        [("gavel_auction_hdr_seconds{", "auction"), ("gavel_engine_overhead_hdr_seconds{", "engine_overhead")];
    let labels = [
        ("quantile=\"0.5\"", "p50"),
        ("quantile=\"0.9\"", "p90"),
        ("quantile=\"0.99\"", "p99"),
        ("quantile=\"0.999\"", "p99.9"),
    ];
    let mut figures = BTreeMap::new();
    for line in text.lines() {
        for (prefix, name) in families {
            let Some(rest) = line.strip_prefix(prefix) else { continue };
            let Some((label_text, value)) = rest.split_once("} ") else { continue };
            for (label, suffix) in labels {
                if label_text.contains(label) {
                    if let Ok(seconds) = value.trim().parse::<f64>() {
                        figures.insert(format!("{name}_{suffix}"), seconds * 1e6);
                    }
                }
            }
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_quantiles_are_read_from_prometheus_text() {
        let text = "gavel_auction_hdr_seconds{campaign=\"load\",quantile=\"0.5\"} 0.00025\n\
                    gavel_auction_hdr_seconds{campaign=\"load\",quantile=\"0.99\"} 0.001\n\
                    gavel_engine_overhead_hdr_seconds{campaign=\"load\",quantile=\"0.999\"} 0.00004\n\
                    gavel_auction_hdr_seconds_count{campaign=\"load\"} 7\n";
        let figures = parse_quantiles(text);
        assert_eq!(figures.len(), 3, "{figures:?}");
        assert!((figures["auction_p50"] - 250.0).abs() < 1e-6);
        assert!((figures["auction_p99"] - 1000.0).abs() < 1e-6);
        assert!((figures["engine_overhead_p99.9"] - 40.0).abs() < 1e-6);
    }
}
