//! `max-rate` (the highest rate whose p99 stays within 2× the floor's + 1 ms, floor and engine measured one
//! after the other at each rate) and `targets` (that search, then the rounds and throughput at half the rate
//! found, and every issue-19 target judged: one command for the whole verdict).

use std::time::Duration;

use crate::criteria::{self, judge_step, micros, next_rate, StepFigures, StepVerdict, TargetFigures};
use crate::load::{OpStats, PhaseResult};
use crate::plot::Kind;
use crate::progress::Progress;
use crate::report::{PhaseRow, Report};
use crate::run::{first_answered, first_kind, series, Bench, Options, Runtimes, Side};
use crate::scenario::Scenario;

/// The pause after a failed step, before the next rate's floor.
const COOL_DOWN: Duration = Duration::from_secs(2);

/// `max-rate`: the bounded search alone, with the p99 ratio and verdict of every rate it ran.
pub async fn max_rate(
    scenario: &Scenario,
    options: &Options,
    runtimes: &Runtimes,
    progress: &Progress,
) -> Result<Report, String> {
    let bench = Bench::start(scenario, options, runtimes, progress).await?;
    let mut report = bench.new_report(options, runtimes);
    report.max_rate = search(&bench, options.rate.unwrap_or(scenario.rate), &mut report).await;
    report.engine_metrics = bench.engine_metrics().await;
    Ok(report)
}

/// `targets`: the search, then floor / echo / engine rounds and the throughput runs at half the rate found,
/// and issue 19's targets judged on them.
pub async fn targets(
    scenario: &Scenario,
    options: &Options,
    runtimes: &Runtimes,
    progress: &Progress,
) -> Result<Report, String> {
    let bench = Bench::start(scenario, options, runtimes, progress).await?;
    let mut report = bench.new_report(options, runtimes);
    let max = search(&bench, options.rate.unwrap_or(scenario.rate), &mut report).await;
    report.max_rate = max;
    let mut figures = TargetFigures { searched: true, max_rate: max, ..TargetFigures::default() };
    // A step measured again for an unsteady floor counts by its second measurement.
    let judged = report.steps.iter().filter(|s| !s.floor_unsteady || s.passed);
    figures.p99_ratios = judged.filter_map(|s| Some((s.rate, s.p99_ratio?))).collect();
    if let Some(max) = max {
        let half = max / 2.0;
        progress.note(&format!("max rate {max:.0}/s: the rounds and throughput runs at half of it, {half:.0}/s"));
        let rounds = bench.rounds(half, &mut report).await;
        report.engine_metrics = bench.engine_metrics().await;
        bench.throughput(scenario.throughput.concurrency, &mut report).await;
        let ratios = bench.ratios(&rounds, &report);
        figures.run_rate = Some(half);
        figures.p50_ratio = ratios.overhead_ratio_p50;
        figures.p99_ratios.extend(ratios.overhead_ratio_p99.map(|r| (half, r)));
        figures.cpu_ratio = ratios.cpu_ratio;
        figures.throughput_ratio = ratios.throughput_ratio;
        report.ratios = Some(ratios);
    }
    report.targets = criteria::issue19_targets(&figures);
    Ok(report)
}

/// Doubles the rate while every rate passes, halves while none has, then bisects between the best pass and
/// the lowest failure; bounded by the scenario's step count, step length and ceiling. Each step measures
/// the floor, then the engine, at the same rate, and once more when the floor was unsteady (the machine
/// busy); rows, CPU, series and verdicts go into the report. Series of unsteady floors are left out.
async fn search(bench: &Bench<'_>, start: f64, report: &mut Report) -> Option<f64> {
    let bounds = bench.scenario.max_rate;
    let (mut best, mut failed): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = start.min(bounds.ceiling);
    for _ in 0..bounds.steps {
        let mut verdict = step(bench, rate, "", report).await;
        if verdict.floor_unsteady {
            // Busy for a moment, or busy throughout: one more try tells which.
            bench.progress.note(&format!("max-rate {rate:.0}/s: the floor was unsteady; measuring this rate again"));
            report.steps.push(verdict);
            verdict = step(bench, rate, " again", report).await;
        }
        if verdict.passed {
            best = Some(best.map_or(rate, |b| b.max(rate)));
        } else {
            failed = Some(failed.map_or(rate, |f| f.min(rate)));
            // An overloaded engine is still finishing what it was sent (and so is the machine): the next
            // step's floor should not measure that.
            tokio::time::sleep(COOL_DOWN).await;
        }
        report.steps.push(verdict);
        match next_rate(best, failed, rate, bounds.ceiling) {
            Some(next) => rate = next,
            None => break,
        }
    }
    best
}

/// Floor, then engine, at `rate`; their rows, CPU and series go into the report, and the verdict is shown.
async fn step(bench: &Bench<'_>, rate: f64, suffix: &str, report: &mut Report) -> StepVerdict {
    let duration = bench.scenario.max_rate.step_at(rate);
    let floor_label = format!("floor@{rate:.0}{suffix}");
    let (floor, _) = bench.phase(Side::Floor, &floor_label, rate, duration).await;
    let engine_label = format!("engine@{rate:.0}{suffix}");
    let (engine, cpu) = bench.phase(Side::Engine, &engine_label, rate, duration).await;
    let verdict = judge_step(&step_figures(rate, &floor, &engine));
    bench.progress.note(&verdict_line(&verdict));
    report.phases.extend(PhaseRow::rows(&floor_label, rate, &floor));
    report.phases.extend(PhaseRow::rows(&engine_label, rate, &engine));
    report.cpu.extend(cpu);
    if !verdict.floor_unsteady {
        for (kind, name, result) in [(Kind::Floor, "floor", &floor), (Kind::Engine, "engine", &engine)] {
            if let Some(stats) = first_kind(result) {
                report.distributions.push(series(kind, name, rate, stats));
            }
        }
    }
    verdict
}

/// The figures one step is judged on.
fn step_figures(rate: f64, floor: &PhaseResult, engine: &PhaseResult) -> StepFigures {
    let quantile = |stats: Option<&OpStats>, q: f64| {
        stats.filter(|s| !s.latency.is_empty()).map(|s| s.latency.value_at_quantile(q))
    };
    let errors = |result: &PhaseResult| result.ops.values().map(|s| s.errors).sum::<u64>();
    let seconds = engine.span.as_secs_f64();
    StepFigures {
        rate,
        floor_p50_us: quantile(first_kind(floor), 0.5),
        floor_p99_us: quantile(first_kind(floor), 0.99),
        floor_errors: errors(floor),
        engine_p99_us: quantile(first_kind(engine), 0.99),
        engine_errors: errors(engine),
        engine_achieved: if seconds > 0.0 { first_answered(engine) as f64 / seconds } else { 0.0 },
    }
}

/// One line per step while the search runs.
fn verdict_line(verdict: &StepVerdict) -> String {
    let ratio = verdict.p99_ratio.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
    let engine = verdict.engine_p99_us.map_or_else(|| "n/a".to_owned(), |us| micros(us as f64));
    let limit = verdict.p99_limit_us.map_or_else(|| "n/a".to_owned(), micros);
    if verdict.passed {
        format!("max-rate {:.0}/s: ok — p99 {engine} within {limit} (ratio {ratio})", verdict.rate)
    } else {
        format!("max-rate {:.0}/s: FAILED — {} (ratio {ratio})", verdict.rate, verdict.reasons.join("; "))
    }
}
