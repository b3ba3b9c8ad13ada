//! The report: one row per phase and request kind, the `max-rate` steps, the throughput runs, CPU per
//! auction, PERF.md's ratios and issue 19's targets with their verdicts; printed as a table and written as
//! JSON (the percentile series too, which `--plot` draws).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::CpuRow;
use crate::criteria::{Check, StepVerdict, Target};
use crate::instructions::Instructions;
use crate::load::{OpStats, PhaseResult};
use crate::plot::Series;
use crate::scale::ScaleRow;
use crate::scenario::Scenario;

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub command: String,
    /// Cores this machine has, as the OS reports them.
    pub cpus: usize,
    /// Where each part ran and on which cores.
    pub layout: Vec<String>,
    pub buyers: usize,
    pub deadline_ms: u64,
    pub phases: Vec<PhaseRow>,
    pub throughput: Vec<ThroughputRow>,
    pub ratios: Option<Ratios>,
    /// The engine's own `/metrics` quantiles at the end of the run (µs), e.g. `engine_overhead_p99`.
    pub engine_metrics: BTreeMap<String, f64>,
    /// `max-rate` and `targets`: the highest rate whose p99 stayed within 2× the floor's + 1 ms, error-free.
    pub max_rate: Option<f64>,
    /// `max-rate` and `targets`: every rate tried, with its verdict.
    pub steps: Vec<StepVerdict>,
    /// The engine's and the echo fan-out server's CPU over each phase.
    pub cpu: Vec<CpuRow>,
    /// Issue 19's targets, each as a ratio with its verdict.
    pub targets: Vec<Target>,
    /// Latency by percentile of every phase kind and rate (`--plot` draws them).
    pub distributions: Vec<Series>,
    /// `cpu` mode: instructions per auction.
    pub instructions: Option<Instructions>,
    /// `scale` mode: auctions per second by engine cores.
    pub scaling: Vec<ScaleRow>,
    /// `cluster` mode: the cluster beside one node, and the cap phase.
    pub cluster: Option<crate::cluster::ClusterFigures>,
}

/// One request kind in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseRow {
    /// e.g. `floor#1`, `engine#2`, `max-rate@800`.
    pub phase: String,
    /// `fanout`, `ping`, `post`, `direct`.
    pub op: String,
    pub target_rate: f64,
    /// Requests scheduled in the phase (all kinds).
    pub scheduled: u64,
    pub ok: u64,
    pub errors: u64,
    /// Answered requests of this kind per second, from the first due time to the last answer.
    pub achieved_rate: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// p99 of how late the schedule handed requests to the generator (already inside the latencies).
    pub send_lag_p99_us: u64,
    pub outcomes: BTreeMap<String, u64>,
}

/// One saturating (closed-loop) run.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// `echo#1`, `engine#1`, …
    pub phase: String,
    pub concurrency: usize,
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    /// HTTP exchanges: requests answered plus requests the buyers received.
    pub exchanges: u64,
    pub exchanges_per_s: f64,
}

/// PERF.md's figures, from the merged rounds of this run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Ratios {
    /// Engine ping latency ÷ raw fan-out latency, at p50 and p99 (target ≤ 1.3 and ≤ 2.0).
    pub overhead_ratio_p50: Option<f64>,
    pub overhead_ratio_p99: Option<f64>,
    /// Engine ping latency − raw fan-out latency, as the seller's client sees it (µs).
    pub overhead_us_p50: Option<f64>,
    pub overhead_us_p99: Option<f64>,
    /// p50 and p99 (µs) of the merged rounds: the floor, the echo fan-out server and the engine.
    pub floor_p50_us: Option<f64>,
    pub floor_p99_us: Option<f64>,
    pub echo_p50_us: Option<f64>,
    pub echo_p99_us: Option<f64>,
    pub engine_p50_us: Option<f64>,
    pub engine_p99_us: Option<f64>,
    /// Engine exchanges/s ÷ echo fan-out exchanges/s (target ≥ 0.8).
    pub throughput_ratio: Option<f64>,
    /// CPU per auction (µs) of the engine and the echo fan-out server over the open-loop rounds, and their
    /// ratio (target ≤ 1.3).
    pub cpu_us_per_auction_engine: Option<f64>,
    pub cpu_us_per_auction_echo: Option<f64>,
    pub cpu_ratio: Option<f64>,
    /// The same over the closed-loop throughput runs (saturated, for reference).
    pub cpu_us_per_auction_engine_saturated: Option<f64>,
    pub cpu_us_per_auction_echo_saturated: Option<f64>,
    pub cpu_ratio_saturated: Option<f64>,
    /// Share of pings answered within deadline + 2 ms (target ≥ 0.999) and + 5 ms (target 1.0).
    pub deadline_adherence_2ms: Option<f64>,
    pub deadline_adherence_5ms: Option<f64>,
}

impl PhaseRow {
    /// One row per request kind of a finished phase.
    pub fn rows(phase: &str, target_rate: f64, result: &PhaseResult) -> Vec<PhaseRow> {
        result
            .ops
            .iter()
            .map(|(op, stats)| {
                PhaseRow::of(phase, op, target_rate, result.scheduled, result.span, stats, &result.send_lag)
            })
            .collect()
    }

    fn of(
        phase: &str,
        op: &str,
        target_rate: f64,
        scheduled: u64,
        span: Duration,
        stats: &OpStats,
        send_lag: &Histogram<u64>,
    ) -> PhaseRow {
        let q = |quantile: f64| if stats.latency.is_empty() { 0 } else { stats.latency.value_at_quantile(quantile) };
        let achieved_rate = if span.is_zero() { 0.0 } else { stats.ok as f64 / span.as_secs_f64() };
        PhaseRow {
            phase: phase.to_owned(),
            op: op.to_owned(),
            target_rate,
            scheduled,
            ok: stats.ok,
            errors: stats.errors,
            achieved_rate,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if stats.latency.is_empty() { 0 } else { stats.latency.max() },
            send_lag_p99_us: if send_lag.is_empty() { 0 } else { send_lag.value_at_quantile(0.99) },
            outcomes: stats.outcomes.clone(),
        }
    }
}

impl Ratios {
    /// The ratios from the merged floor and engine pings and the throughput runs.
    pub fn compute(
        floor: Option<&OpStats>,
        pings: Option<&OpStats>,
        deadline: Duration,
        throughput: &[ThroughputRow],
    ) -> Ratios {
        let mut ratios = Ratios::default();
        let quantile = |s: &OpStats, q: f64| s.latency.value_at_quantile(q) as f64;
        let figure = |s: Option<&OpStats>, q: f64| s.filter(|s| !s.latency.is_empty()).map(|s| quantile(s, q));
        (ratios.floor_p50_us, ratios.floor_p99_us) = (figure(floor, 0.5), figure(floor, 0.99));
        (ratios.engine_p50_us, ratios.engine_p99_us) = (figure(pings, 0.5), figure(pings, 0.99));
        if let (Some(floor), Some(pings)) = (floor, pings) {
            if !floor.latency.is_empty() && !pings.latency.is_empty() {
                for (q, ratio, overhead) in [
                    (0.5, &mut ratios.overhead_ratio_p50, &mut ratios.overhead_us_p50),
                    (0.99, &mut ratios.overhead_ratio_p99, &mut ratios.overhead_us_p99),
                ] {
                    *ratio = Some(quantile(pings, q) / quantile(floor, q).max(1.0));
                    *overhead = Some(quantile(pings, q) - quantile(floor, q));
                }
            }
        }
        if let Some(pings) = pings {
            let total = pings.ok + pings.errors;
            if total > 0 {
                let within = |slack: Duration| {
                    let bound = u64::try_from((deadline + slack).as_micros()).unwrap_or(u64::MAX);
                    pings.latency.count_between(0, bound) as f64 / total as f64
                };
                ratios.deadline_adherence_2ms = Some(within(Duration::from_millis(2)));
                ratios.deadline_adherence_5ms = Some(within(Duration::from_millis(5)));
            }
        }
        let rate = |prefix: &str| {
            let rows: Vec<&ThroughputRow> = throughput.iter().filter(|r| r.phase.starts_with(prefix)).collect();
            let seconds: f64 = rows.iter().map(|r| r.seconds).sum();
            (seconds > 0.0).then(|| rows.iter().map(|r| r.exchanges as f64).sum::<f64>() / seconds)
        };
        if let (Some(engine), Some(echo)) = (rate("engine"), rate("echo")) {
            ratios.throughput_ratio = (echo > 0.0).then(|| engine / echo);
        }
        ratios
    }

    /// Sets the CPU figures: engine and echo CPU per auction (µs), over the open-loop rounds or, with
    /// `saturated`, over the throughput runs.
    pub fn set_cpu(&mut self, engine: Option<f64>, echo: Option<f64>, saturated: bool) {
        let ratio = match (engine, echo) {
            (Some(engine), Some(echo)) if echo > 0.0 => Some(engine / echo),
            _ => None,
        };
        let fields = if saturated {
            (
                &mut self.cpu_us_per_auction_engine_saturated,
                &mut self.cpu_us_per_auction_echo_saturated,
                &mut self.cpu_ratio_saturated,
            )
        } else {
            (&mut self.cpu_us_per_auction_engine, &mut self.cpu_us_per_auction_echo, &mut self.cpu_ratio)
        };
        (*fields.0, *fields.1, *fields.2) = (engine, echo, ratio);
    }

    /// Each figure with its PERF.md target and whether it is met.
    fn checks(&self) -> Vec<(&'static str, Option<f64>, Check)> {
        vec![
            ("overhead ratio p50", self.overhead_ratio_p50, Check::AtMost(1.3)),
            ("overhead ratio p99", self.overhead_ratio_p99, Check::AtMost(2.0)),
            ("engine overhead p50 (µs, client view)", self.overhead_us_p50, Check::AtMost(100.0)),
            ("engine overhead p99 (µs, client view)", self.overhead_us_p99, Check::AtMost(1000.0)),
            ("throughput ratio", self.throughput_ratio, Check::AtLeast(0.8)),
            ("CPU per auction, engine ÷ echo", self.cpu_ratio, Check::AtMost(1.3)),
            ("  the same, saturated (reference)", self.cpu_ratio_saturated, Check::AtMost(1.3)),
            ("deadline adherence, deadline + 2 ms", self.deadline_adherence_2ms, Check::AtLeast(0.999)),
            ("deadline adherence, deadline + 5 ms", self.deadline_adherence_5ms, Check::AtLeast(1.0)),
        ]
    }
}

impl Report {
    /// An empty report of `scenario`, run by `command` on a machine of `cpus` CPUs laid out as `layout`.
    pub fn new(scenario: &Scenario, command: String, cpus: usize, layout: Vec<String>) -> Report {
        Report {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            command,
            cpus,
            layout,
            buyers: scenario.buyers.len(),
            deadline_ms: u64::try_from(scenario.deadline.as_millis()).unwrap_or(u64::MAX),
            phases: Vec::new(),
            throughput: Vec::new(),
            ratios: None,
            engine_metrics: BTreeMap::new(),
            max_rate: None,
            steps: Vec::new(),
            cpu: Vec::new(),
            targets: Vec::new(),
            distributions: Vec::new(),
            instructions: None,
            scaling: Vec::new(),
            cluster: None,
        }
    }

    /// PERF.md's figures as `(name, value, check)` for the table.
    pub(crate) fn perf_checks(&self) -> Vec<(&'static str, Option<f64>, Check)> {
        self.ratios.as_ref().map(Ratios::checks).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::record;

    fn stats(micros: &[u64], errors: u64) -> OpStats {
        let mut stats = OpStats::default();
        for &m in micros {
            record(&mut stats.latency, Duration::from_micros(m));
            stats.ok += 1;
        }
        stats.errors = errors;
        stats
    }

    #[test]
    fn ratios_compare_the_engine_with_its_same_run_baselines() {
        let floor = stats(&[100, 100, 100, 200], 0);
        let pings = stats(&[150, 150, 150, 300_000, 304_000], 1);
        let throughput = [
            ThroughputRow {
                phase: "echo#1".into(),
                concurrency: 8,
                ok: 0,
                errors: 0,
                seconds: 2.0,
                requests_per_s: 0.0,
                exchanges: 2000,
                exchanges_per_s: 0.0,
            },
            ThroughputRow {
                phase: "engine#1".into(),
                concurrency: 8,
                ok: 0,
                errors: 0,
                seconds: 1.0,
                requests_per_s: 0.0,
                exchanges: 700,
                exchanges_per_s: 0.0,
            },
        ];
        let ratios = Ratios::compute(Some(&floor), Some(&pings), Duration::from_millis(300), &throughput);
        assert_eq!(ratios.overhead_ratio_p50, Some(1.5));
        assert_eq!(ratios.overhead_us_p50, Some(50.0));
        assert_eq!(ratios.throughput_ratio, Some(0.7));
        // 4 of 6 pings (one failed) within 302 ms; 5 of 6 within 305 ms.
        assert_eq!(ratios.deadline_adherence_2ms, Some(4.0 / 6.0));
        assert_eq!(ratios.deadline_adherence_5ms, Some(5.0 / 6.0));
    }
}
