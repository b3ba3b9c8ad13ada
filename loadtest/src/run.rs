//! The `run` and `floor` modes, and what every mode that measures the engine shares: the [`Bench`] (buyers,
//! engine, echo fan-out server, seller and floor, started once) and its phases.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use gavel::sim::{SimBuyer, SimBuyerSpec};
use tokio::runtime::Handle;

use crate::baseline::{timed_echo, FanOut};
use crate::conn::ConnPool;
use crate::cpu::{self, CpuMeter, CpuRow};
use crate::criteria::{self, TargetFigures};
use crate::engine::{self, ChildOptions, EngineSource, Server};
use crate::load::{self, OpStats, PhaseResult};
use crate::plot::{self, Kind, Series};
use crate::progress::{Progress, Show};
use crate::report::{PhaseRow, Ratios, Report, ThroughputRow};
use crate::scenario::Scenario;
use crate::seller::Seller;

/// What the command line chose.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: EngineSource,
    /// How the engine and the echo fan-out server run (threads, pinning, callgrind).
    pub child: ChildOptions,
    /// The process of a `--target` engine, for its CPU time.
    pub target_pid: Option<u32>,
    /// Overrides the scenario's rate.
    pub rate: Option<f64>,
    /// The command as typed, for the report.
    pub command: String,
}

/// The runtime the simulated buyers run on, besides the generator's own (the caller's current-thread runtime).
#[derive(Clone)]
pub struct Runtimes {
    pub buyers: Handle,
    pub buyer_threads: usize,
}

/// Which server a phase loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The raw fan-out from this process: no server at all.
    Floor,
    /// The echo fan-out server.
    Echo,
    /// The engine.
    Engine,
}

/// Everything a measuring mode needs, started once. Dropping it stops the servers and the buyers.
pub struct Bench<'a> {
    pub scenario: &'a Scenario,
    pub progress: &'a Progress,
    pub engine: Server,
    pub echo: Server,
    sims: Vec<SimBuyer>,
    seller: Arc<Seller>,
    floor: Arc<FanOut>,
    echo_pool: Arc<ConnPool>,
}

/// The merged figures of the alternating rounds at one rate.
pub struct Rounds {
    pub rate: f64,
    pub floor: OpStats,
    pub echo: OpStats,
    /// The engine's first requests: pings, or direct posts where the mix has no pings.
    pub engine: OpStats,
}

/// `run`: floor, echo and engine phases alternating at one rate, the throughput runs, and the ratios.
pub async fn run(
    scenario: &Scenario,
    options: &Options,
    runtimes: &Runtimes,
    progress: &Progress,
) -> Result<Report, String> {
    let bench = Bench::start(scenario, options, runtimes, progress).await?;
    let mut report = bench.new_report(options, runtimes);
    let rate = options.rate.unwrap_or(scenario.rate);
    let rounds = bench.rounds(rate, &mut report).await;
    // Read before the saturating runs, so the engine's own figures describe the open-loop phases.
    report.engine_metrics = bench.engine_metrics().await;
    bench.throughput(scenario.throughput.concurrency, &mut report).await;
    let ratios = bench.ratios(&rounds, &report);
    report.targets = criteria::issue19_targets(&TargetFigures {
        run_rate: Some(rate),
        p50_ratio: ratios.overhead_ratio_p50,
        p99_ratios: ratios.overhead_ratio_p99.map(|r| (rate, r)).into_iter().collect(),
        cpu_ratio: ratios.cpu_ratio,
        throughput_ratio: ratios.throughput_ratio,
        ..TargetFigures::default()
    });
    report.ratios = Some(ratios);
    Ok(report)
}

/// `floor`: the raw fan-out baseline alone.
pub async fn floor(
    scenario: &Scenario,
    options: &Options,
    runtimes: &Runtimes,
    progress: &Progress,
) -> Result<Report, String> {
    let sims = start_buyers(scenario, &runtimes.buyers, false).await?;
    let addrs: Vec<SocketAddr> = sims.iter().map(SimBuyer::addr).collect();
    let fan_out = Arc::new(FanOut::new(&legs(scenario, &addrs), scenario.deadline));
    let rate = options.rate.unwrap_or(scenario.rate);
    let mut report = report_skeleton(scenario, options, runtimes.buyer_threads, Vec::new());
    let mut merged = OpStats::default();
    for round in 1..=scenario.rounds {
        let label = format!("floor#{round}");
        if !scenario.warmup.is_zero() {
            let requests = scenario.requests_at(rate, scenario.warmup);
            floor_load(&fan_out, rate, requests, progress.warmup(&label)).await;
        }
        let requests = scenario.requests_at(rate, scenario.duration);
        let result = floor_load(&fan_out, rate, requests, progress.phase(&label)).await;
        if let Some(stats) = result.ops.get("fanout") {
            merged.merge(stats);
        }
        report.phases.extend(PhaseRow::rows(&label, rate, &result));
    }
    report.distributions.push(series(Kind::Floor, "floor", rate, &merged));
    Ok(report)
}

impl<'a> Bench<'a> {
    /// Starts the buyers, the engine (or reaches the `--target`) and the echo fan-out server.
    pub async fn start(
        scenario: &'a Scenario,
        options: &Options,
        runtimes: &Runtimes,
        progress: &'a Progress,
    ) -> Result<Bench<'a>, String> {
        let target = match options.source {
            EngineSource::Target(addr) => Some(addr),
            _ => None,
        };
        let sims = start_buyers(scenario, &runtimes.buyers, target.is_some()).await?;
        let addrs: Vec<SocketAddr> = sims.iter().map(SimBuyer::addr).collect();
        let legs = legs(scenario, &addrs);
        let engine = match target {
            Some(addr) => engine::running(addr, options.target_pid).await?,
            None => engine::start_child(&options.source, scenario, &addrs, &options.child).await?,
        };
        let echo = engine::start_echo(&legs, scenario.deadline, &options.child).await?;
        Ok(Bench {
            scenario,
            progress,
            seller: Arc::new(Seller::new(engine.addr, scenario.deadline)),
            floor: Arc::new(FanOut::new(&legs, scenario.deadline)),
            echo_pool: Arc::new(ConnPool::new(echo.addr)),
            engine,
            echo,
            sims,
        })
    }

    /// One open-loop run of `requests` at `rate` against one side, no warm-up.
    pub async fn load(&self, side: Side, rate: f64, requests: u64, show: Show<'_>) -> PhaseResult {
        match side {
            Side::Floor => floor_load(&self.floor, rate, requests, show).await,
            Side::Echo => {
                let (pool, body) = (Arc::clone(&self.echo_pool), self.seller.ping_body());
                let limit = self.scenario.deadline + Duration::from_secs(2);
                load::open_loop(rate, requests, show, move |_, due, recorder| {
                    timed_echo(Arc::clone(&pool), body.clone(), limit, due, recorder)
                })
                .await
            }
            Side::Engine => {
                let (seller, mix) = (Arc::clone(&self.seller), self.scenario.mix);
                load::open_loop(rate, requests, show, move |n, due, recorder| {
                    Arc::clone(&seller).run(mix.op(n), n, due, recorder)
                })
                .await
            }
        }
    }

    /// A warm-up, then a measured phase of `duration` at `rate` with the server's CPU over it.
    pub async fn phase(&self, side: Side, label: &str, rate: f64, duration: Duration) -> (PhaseResult, Option<CpuRow>) {
        if !self.scenario.warmup.is_zero() {
            let requests = self.scenario.requests_at(rate, self.scenario.warmup);
            self.load(side, rate, requests, self.progress.warmup(label)).await;
        }
        let (pid, process) = match side {
            Side::Floor => (None, ""),
            Side::Echo => (self.echo.pid(), "echo"),
            Side::Engine => (self.engine.pid(), "engine"),
        };
        let meter = CpuMeter::start(pid);
        let result = self.load(side, rate, self.scenario.requests_at(rate, duration), self.progress.phase(label)).await;
        let cpu = meter.and_then(|m| m.stop(label, process, first_answered(&result)));
        (result, cpu)
    }

    /// Floor, echo and engine phases alternating for the scenario's rounds at `rate`; their rows, CPU and
    /// percentile series go into the report.
    pub async fn rounds(&self, rate: f64, report: &mut Report) -> Rounds {
        let mut rounds =
            Rounds { rate, floor: OpStats::default(), echo: OpStats::default(), engine: OpStats::default() };
        for round in 1..=self.scenario.rounds {
            for (side, name) in [(Side::Floor, "floor"), (Side::Echo, "echo"), (Side::Engine, "engine")] {
                let label = format!("{name}#{round}");
                let (result, cpu) = self.phase(side, &label, rate, self.scenario.duration).await;
                let merged = match side {
                    Side::Floor => &mut rounds.floor,
                    Side::Echo => &mut rounds.echo,
                    Side::Engine => &mut rounds.engine,
                };
                if let Some(stats) = first_kind(&result) {
                    merged.merge(stats);
                }
                report.phases.extend(PhaseRow::rows(&label, rate, &result));
                report.cpu.extend(cpu);
            }
        }
        report.distributions.push(series(Kind::Floor, "floor", rate, &rounds.floor));
        report.distributions.push(series(Kind::Echo, "echo", rate, &rounds.echo));
        report.distributions.push(series(Kind::Engine, "engine", rate, &rounds.engine));
        rounds
    }

    /// Closed-loop runs, echo fan-out and engine alternating, with every buyer answering at once (a bid): both
    /// sides are then bound by their own work, not by the buyers' latency. Buyers get their specs back after.
    pub async fn throughput(&self, concurrency: usize, report: &mut Report) {
        for (index, sim) in self.sims.iter().enumerate() {
            sim.set_spec(SimBuyerSpec { record: false, seed: index as u64 + 1, ..SimBuyerSpec::bidding("10.00") });
        }
        for round in 1..=self.scenario.rounds {
            for (side, name, pid) in
                [(Side::Echo, "echo", self.echo.pid()), (Side::Engine, "engine", self.engine.pid())]
            {
                let label = format!("{name}#{round}");
                let shown = format!("throughput {label}");
                let before = buyer_requests(&self.sims);
                let meter = CpuMeter::start(pid);
                let saturation = self.saturate(side, concurrency, self.progress.phase(&shown)).await;
                report.cpu.extend(meter.and_then(|m| m.stop(&shown, name, saturation.ok)));
                let row = throughput_row(label, concurrency, saturation, buyer_requests(&self.sims) - before);
                report.throughput.push(row);
            }
        }
        for (sim, plan) in self.sims.iter().zip(&self.scenario.buyers) {
            sim.set_spec(plan.spec.clone());
        }
    }

    /// Keeps `concurrency` pings in flight against the engine or the echo for the scenario's throughput time.
    async fn saturate(&self, side: Side, concurrency: usize, show: Show<'_>) -> load::Saturation {
        let duration = self.scenario.throughput.duration;
        if side == Side::Echo {
            let (pool, body) = (Arc::clone(&self.echo_pool), self.seller.ping_body());
            let limit = self.scenario.deadline + Duration::from_secs(2);
            load::closed_loop(concurrency, duration, show, move || {
                let (pool, body) = (Arc::clone(&pool), body.clone());
                async move { matches!(pool.post("/echo", &[], body, limit).await, Ok(a) if a.status.is_success()) }
            })
            .await
        } else {
            let seller = Arc::clone(&self.seller);
            load::closed_loop(concurrency, duration, show, move || {
                let seller = Arc::clone(&seller);
                async move { seller.ping_once().await }
            })
            .await
        }
    }

    /// PERF.md's ratios from the rounds and the throughput runs in the report.
    pub fn ratios(&self, rounds: &Rounds, report: &Report) -> Ratios {
        let mut ratios = Ratios::compute(
            Some(&rounds.floor).filter(|s| s.ok > 0),
            Some(&rounds.engine).filter(|s| s.ok + s.errors > 0),
            self.scenario.deadline,
            &report.throughput,
        );
        if !rounds.echo.latency.is_empty() {
            let echo = |q: f64| Some(rounds.echo.latency.value_at_quantile(q) as f64);
            (ratios.echo_p50_us, ratios.echo_p99_us) = (echo(0.5), echo(0.99));
        }
        let at = |process: &str, prefix: &str| cpu::per_auction(&report.cpu, process, prefix);
        ratios.set_cpu(at("engine", "engine#"), at("echo", "echo#"), false);
        ratios.set_cpu(at("engine", "throughput engine#"), at("echo", "throughput echo#"), true);
        ratios
    }

    /// The engine's own HDR quantiles from `/metrics` (µs): auction time and engine overhead. Empty when the
    /// engine does not export them.
    pub async fn engine_metrics(&self) -> BTreeMap<String, f64> {
        let Ok(answer) = self.seller.pool().get("/metrics", Duration::from_secs(5)).await else {
            return BTreeMap::new();
        };
        parse_quantiles(&String::from_utf8_lossy(&answer.body))
    }

    /// An empty report that says what runs where.
    pub fn new_report(&self, options: &Options, runtimes: &Runtimes) -> Report {
        let layout = vec![
            format!("engine: {}", self.engine.description),
            format!("echo fan-out baseline: {}", self.echo.description),
        ];
        report_skeleton(self.scenario, options, runtimes.buyer_threads, layout)
    }
}

fn report_skeleton(scenario: &Scenario, options: &Options, buyer_threads: usize, mut layout: Vec<String>) -> Report {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    layout.push(format!(
        "simulated buyers: {} HTTP servers on loopback in this process, on a runtime of {buyer_threads} worker \
         thread(s)",
        scenario.buyers.len(),
    ));
    layout.push(
        "generator and raw fan-out (floor): this process's main thread (one current-thread runtime), fed by a \
         schedule thread"
            .into(),
    );
    if options.child.cpus.is_none() {
        layout.push(format!(
            "no CPU pinning: all of the above share this machine's {cpus} CPUs (pin the engine and echo with \
             --engine-cpus, the rest by running gavel-loadtest under taskset)"
        ));
    }
    Report::new(scenario, options.command.clone(), cpus, layout)
}

async fn floor_load(fan_out: &Arc<FanOut>, rate: f64, requests: u64, show: Show<'_>) -> PhaseResult {
    let fan_out = Arc::clone(fan_out);
    load::open_loop(rate, requests, show, move |_, due, recorder| Arc::clone(&fan_out).timed(due, recorder)).await
}

/// The phase's first requests, the ones compared with the floor: the fan-out, the echo, the engine's pings,
/// or its direct posts where the mix has no pings.
pub fn first_kind(result: &PhaseResult) -> Option<&OpStats> {
    ["fanout", "echo", "ping", "direct"].iter().find_map(|op| result.ops.get(op))
}

/// First requests (pings, direct posts, echoes) answered in a phase: its auctions.
pub fn first_answered(result: &PhaseResult) -> u64 {
    result.ops.iter().filter(|(op, _)| **op != "post").map(|(_, s)| s.ok).sum()
}

/// One phase's latency by percentile, for the chart.
pub fn series(kind: Kind, name: &str, rate: f64, stats: &OpStats) -> Series {
    Series { label: format!("{name} @{rate:.0}/s"), kind, rate, points: plot::percentile_series(&stats.latency) }
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
