//! `scale`: auctions per second with the engine (and, for reference, the echo fan-out server) pinned to the
//! first 1, 2, 4, 8 … CPUs and this process (simulated buyers and generator) pinned to the rest, each
//! against linear scaling from the first row (PERF.md: ≥ 0.7 of linear). Closed loop, buyers bidding at
//! once, the concurrency scaled with the cores so that more cores have the work to use.

use std::process::Command;

use serde::Serialize;

use crate::cpu::CpuRow;
use crate::progress::Progress;
use crate::report::{Report, ThroughputRow};
use crate::run::{Bench, Options, Runtimes};
use crate::scenario::Scenario;

/// One engine size.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleRow {
    pub engine_cores: usize,
    /// `taskset -c` lists: the engine's and echo's CPUs, and this process's.
    pub engine_cpus: String,
    pub rest_cpus: String,
    pub concurrency: usize,
    /// Auctions (pings answered) per second, engine and echo.
    pub engine_per_s: f64,
    pub echo_per_s: f64,
    /// Cores the engine kept busy (CPU seconds ÷ wall seconds): well under `engine_cores` means the buyers or
    /// the generator, not the engine, set the pace, and the row says nothing about the engine's scaling.
    pub engine_busy: Option<f64>,
    /// Auctions per second ÷ (cores × the first row's auctions per second per core).
    pub engine_linear: Option<f64>,
    pub echo_linear: Option<f64>,
}

/// Runs the throughput phases once per entry of `cores`, the servers pinned to that many CPUs.
pub async fn scale(
    scenario: &Scenario,
    options: &Options,
    runtimes: &Runtimes,
    progress: &Progress,
    cores: &[usize],
) -> Result<Report, String> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if let Some(bad) = cores.iter().find(|k| **k == 0 || **k >= cpus) {
        return Err(format!(
            "--cores {bad}: this machine has {cpus} CPUs, and the buyers and generator need at least one of their own"
        ));
    }
    let mut report: Option<Report> = None;
    let mut rows: Vec<ScaleRow> = Vec::new();
    for &k in cores {
        let (engine_cpus, rest_cpus) = (cpu_list(0, k), cpu_list(k, cpus));
        pin_this_process(&rest_cpus)?;
        let mut options = options.clone();
        options.child.cpus = Some(engine_cpus.clone());
        options.child.threads = Some(k);
        progress.note(&format!("scale: engine and echo on CPUs {engine_cpus}, buyers and generator on {rest_cpus}"));
        let bench = Bench::start(scenario, &options, runtimes, progress).await?;
        let mut part = bench.new_report(&options, runtimes);
        let concurrency = scenario.throughput.concurrency * k;
        bench.throughput(concurrency, &mut part).await;
        drop(bench);
        rows.push(ScaleRow {
            engine_cores: k,
            engine_cpus,
            rest_cpus,
            concurrency,
            engine_per_s: per_second(&part.throughput, "engine#"),
            echo_per_s: per_second(&part.throughput, "echo#"),
            engine_busy: busy(&part.cpu, "engine"),
            engine_linear: None,
            echo_linear: None,
        });
        let report = report.get_or_insert_with(|| Report {
            layout: Vec::new(),
            throughput: Vec::new(),
            cpu: Vec::new(),
            ..part.clone()
        });
        report.layout.extend(part.layout.iter().take(2).map(|line| format!("{k} core(s): {line}")));
        for mut row in part.throughput {
            row.phase = format!("{k}c {}", row.phase);
            report.throughput.push(row);
        }
        report.cpu.extend(part.cpu.into_iter().map(|mut row| {
            row.phase = format!("{k}c {}", row.phase);
            row
        }));
    }
    set_linear(&mut rows);
    let mut report = report.ok_or_else(|| "--cores lists no core count".to_owned())?;
    report.layout.push(format!(
        "this process (buyers on {} thread(s), generator) pinned with `taskset -a -p` to the CPUs the servers \
         do not use",
        runtimes.buyer_threads
    ));
    report.scaling = rows;
    Ok(report)
}

/// Fills each row's fraction of linear scaling from the first row's per-core figure.
pub fn set_linear(rows: &mut [ScaleRow]) {
    let Some(first) = rows.first() else { return };
    let per_core = (first.engine_per_s / first.engine_cores as f64, first.echo_per_s / first.engine_cores as f64);
    for row in rows {
        let cores = row.engine_cores as f64;
        row.engine_linear = (per_core.0 > 0.0).then(|| row.engine_per_s / (cores * per_core.0));
        row.echo_linear = (per_core.1 > 0.0).then(|| row.echo_per_s / (cores * per_core.1));
    }
}

/// Pings answered per second over the rows whose phase starts with `prefix`.
fn per_second(rows: &[ThroughputRow], prefix: &str) -> f64 {
    let rows = rows.iter().filter(|r| r.phase.starts_with(prefix));
    let (ok, seconds) = rows.fold((0, 0.0), |(ok, s), r| (ok + r.ok, s + r.seconds));
    if seconds > 0.0 {
        ok as f64 / seconds
    } else {
        0.0
    }
}

/// Cores a process kept busy over its rows.
fn busy(rows: &[CpuRow], process: &str) -> Option<f64> {
    let rows = rows.iter().filter(|r| r.process == process);
    let (cpu, wall) = rows.fold((0.0, 0.0), |(c, w), r| (c + r.cpu_s, w + r.wall_s));
    (wall > 0.0).then(|| cpu / wall)
}

/// `taskset -c` syntax for CPUs `from..to`: `0`, `0-3`, `4-15`.
pub fn cpu_list(from: usize, to: usize) -> String {
    if to <= from + 1 {
        from.to_string()
    } else {
        format!("{from}-{}", to - 1)
    }
}

/// Moves every thread of this process onto `cpus` (threads started later inherit it).
fn pin_this_process(cpus: &str) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", cpus, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -a -c -p {cpus} failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_taskset_ranges() {
        assert_eq!(cpu_list(0, 1), "0");
        assert_eq!(cpu_list(0, 4), "0-3");
        assert_eq!(cpu_list(4, 16), "4-15");
        assert_eq!(cpu_list(1, 2), "1");
    }

    #[test]
    fn linear_scaling_is_measured_from_the_first_rows_per_core_figure() {
        let row = |k: usize, engine: f64, echo: f64| ScaleRow {
            engine_cores: k,
            engine_cpus: cpu_list(0, k),
            rest_cpus: cpu_list(k, 16),
            concurrency: 16 * k,
            engine_per_s: engine,
            echo_per_s: echo,
            engine_busy: None,
            engine_linear: None,
            echo_linear: None,
        };
        let mut rows = vec![row(1, 3_000.0, 4_000.0), row(2, 5_400.0, 8_000.0), row(8, 16_800.0, 0.0)];
        set_linear(&mut rows);
        let linear: Vec<Option<f64>> = rows.iter().map(|r| r.engine_linear).collect();
        assert_eq!(linear, [Some(1.0), Some(0.9), Some(0.7)]);
        assert_eq!(rows[1].echo_linear, Some(1.0));
        assert_eq!(rows[2].echo_linear, Some(0.0));
    }
}
