//! The report as the table a person reads: one section per kind of figure, each only when measured.

use std::fmt::Write;

use crate::criteria::micros;
use crate::report::Report;

impl Report {
    /// The report as a readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.open_loop(&mut out);
        self.steps_section(&mut out);
        self.throughput_section(&mut out);
        self.cpu_section(&mut out);
        if !self.engine_metrics.is_empty() {
            let figures: Vec<String> = self.engine_metrics.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
            let _ =
                writeln!(out, "\nengine's own /metrics (µs, open-loop phases and warm-ups): {}", figures.join(", "));
        }
        self.perf_section(&mut out);
        self.targets_section(&mut out);
        self.instructions_section(&mut out);
        self.scaling_section(&mut out);
        self.cluster_section(&mut out);
        out
    }

    fn cluster_section(&self, out: &mut String) {
        let Some(c) = &self.cluster else { return };
        let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "
cluster of {} nodes against one node, {:.0}/s, latency from the scheduled send time (µs):
             {:<12} {:>9} {:>9} {:>7}
{:<12} {:>9.0} {:>9.0} {:>7}
{:<12} {:>9.0} {:>9.0} {:>7}
{:<12} {:>9.0} {:>9.0} {:>7}",
            c.nodes,
            c.rate,
            "",
            "p50",
            "p99",
            "errors",
            "floor",
            c.floor_p50_us,
            c.floor_p99_us,
            "-",
            "one node",
            c.single_p50_us,
            c.single_p99_us,
            c.single_errors,
            "cluster",
            c.cluster_p50_us,
            c.cluster_p99_us,
            c.cluster_errors,
        );
        let _ = writeln!(
            out,
            "  cluster p50 − one node p50: {:+.0} µs (target ≤ 150) {}",
            c.added_p50_us,
            verdict(c.added_p50_us <= 150.0)
        );
        let us = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} µs"));
        let _ = writeln!(
            out,
            "  inside the engines, p50: overhead one node {}, cluster node {}; its Redis hold round trip {}",
            us(c.single_overhead_p50_us),
            us(c.cluster_overhead_p50_us),
            us(c.redis_hold_p50_us)
        );
        let exact = c.cap_delivered <= u64::from(c.cap) && c.cap_used_by_node.iter().all(|u| *u == c.cap_delivered);
        let _ = writeln!(
            out,
            "  capped buyer: daily cap {}, received {}, used on each node {:?}: {}",
            c.cap,
            c.cap_delivered,
            c.cap_used_by_node,
            verdict(exact)
        );
    }

    fn header(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "gavel-loadtest — scenario {} ({} buyers, deadline {} ms)",
            self.scenario, self.buyers, self.deadline_ms
        );
        if !self.description.is_empty() {
            let _ = writeln!(out, "  {}", self.description);
        }
        let _ = writeln!(out, "  command: {}", self.command);
        let _ = writeln!(out, "  machine: {} CPUs", self.cpus);
        for line in &self.layout {
            let _ = writeln!(out, "  {line}");
        }
    }

    fn open_loop(&self, out: &mut String) {
        if self.phases.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nopen loop, latency from each request's scheduled send time (µs):\n{:<14} {:<7} {:>9} {:>10} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "phase", "op", "target/s", "achieved/s", "ok", "err", "p50", "p90", "p99", "p99.9", "max", "lag p99"
        );
        for row in &self.phases {
            let _ = writeln!(
                out,
                "{:<14} {:<7} {:>9.0} {:>10.1} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
                row.phase,
                row.op,
                row.target_rate,
                row.achieved_rate,
                row.ok,
                row.errors,
                row.p50_us,
                row.p90_us,
                row.p99_us,
                row.p999_us,
                row.max_us,
                row.send_lag_p99_us
            );
        }
        let outcomes: Vec<String> = self
            .phases
            .iter()
            .filter(|r| !r.outcomes.is_empty())
            .map(|r| format!("{} {}: {:?}", r.phase, r.op, r.outcomes))
            .collect();
        if !outcomes.is_empty() {
            let _ = writeln!(out, "outcomes:\n  {}", outcomes.join("\n  "));
        }
    }

    fn steps_section(&self, out: &mut String) {
        if self.steps.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nmax-rate steps: sustainable when engine p99 <= 2 × floor p99 + 1 ms, no errors, 90% of the rate \
             answered\n{:>9} {:>11} {:>11} {:>9} {:>11}  verdict",
            "rate/s", "floor p99", "engine p99", "p99 ratio", "limit"
        );
        let shown = |us: Option<u64>| us.map_or_else(|| "n/a".to_owned(), |us| micros(us as f64));
        for step in &self.steps {
            let verdict = if step.passed { "ok".to_owned() } else { format!("FAILED: {}", step.reasons.join("; ")) };
            let _ = writeln!(
                out,
                "{:>9.0} {:>11} {:>11} {:>9} {:>11}  {verdict}",
                step.rate,
                shown(step.floor_p99_us),
                shown(step.engine_p99_us),
                step.p99_ratio.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}")),
                step.p99_limit_us.map_or_else(|| "n/a".to_owned(), micros),
            );
        }
        match self.max_rate {
            Some(rate) => {
                let lowest_failure = self.steps.iter().filter(|s| !s.passed && s.rate > rate).map(|s| s.rate);
                let above = lowest_failure.min_by(f64::total_cmp).map_or_else(
                    || " (no rate above it failed: the ceiling or the step count ended the search)".to_owned(),
                    |r| format!(" ({r:.0}/s failed)"),
                );
                let _ = writeln!(
                    out,
                    "max sustainable rate: {rate:.0}/s{above}; issue 19's ratios are judged at half of it: \
                     `run --rate {:.0}`, or all at once with `targets`",
                    rate / 2.0
                );
            }
            None => {
                let _ = writeln!(out, "max sustainable rate: none of the rates tried passed");
            }
        }
    }

    fn throughput_section(&self, out: &mut String) {
        if self.throughput.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nthroughput, closed loop, buyers answering at once:\n{:<10} {:>6} {:>9} {:>6} {:>12} {:>13}",
            "phase", "conc.", "ok", "err", "requests/s", "exchanges/s"
        );
        for row in &self.throughput {
            let _ = writeln!(
                out,
                "{:<10} {:>6} {:>9} {:>6} {:>12.0} {:>13.0}",
                row.phase, row.concurrency, row.ok, row.errors, row.requests_per_s, row.exchanges_per_s
            );
        }
    }

    fn cpu_section(&self, out: &mut String) {
        if self.cpu.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nCPU of each server process over each phase (/proc/<pid>/stat, user + system):\n{:<22} {:<7} {:>8} {:>7} {:>6} {:>9} {:>13}",
            "phase", "process", "cpu s", "wall s", "cores", "auctions", "µs/auction"
        );
        for row in &self.cpu {
            let _ = writeln!(
                out,
                "{:<22} {:<7} {:>8.3} {:>7.2} {:>6.2} {:>9} {:>13}",
                row.phase,
                row.process,
                row.cpu_s,
                row.wall_s,
                row.cores(),
                row.auctions,
                row.us_per_auction.map_or_else(|| "n/a".to_owned(), |us| format!("{us:.1}"))
            );
        }
    }

    fn perf_section(&self, out: &mut String) {
        let checks = self.perf_checks();
        if checks.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nPERF.md figures (this run's baselines):");
        for (name, value, check) in checks {
            let (shown, verdict) = match value {
                Some(v) => (format!("{v:.4}"), check.verdict(v)),
                None => ("n/a".into(), "not measured".into()),
            };
            let _ = writeln!(out, "  {name:<40} {shown:>10}   target {:<8} {verdict}", check.text());
        }
        if let Some(ratios) = &self.ratios {
            let figure = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
            let pair = |a: Option<f64>, b: Option<f64>| format!("{} / {}", figure(a), figure(b));
            let _ = writeln!(
                out,
                "  p50 / p99 of the merged rounds (µs): floor {}, echo {}, engine {}",
                pair(ratios.floor_p50_us, ratios.floor_p99_us),
                pair(ratios.echo_p50_us, ratios.echo_p99_us),
                pair(ratios.engine_p50_us, ratios.engine_p99_us),
            );
            let _ = writeln!(
                out,
                "  CPU per auction (µs): engine {} vs echo {} open loop; engine {} vs echo {} saturated",
                figure(ratios.cpu_us_per_auction_engine),
                figure(ratios.cpu_us_per_auction_echo),
                figure(ratios.cpu_us_per_auction_engine_saturated),
                figure(ratios.cpu_us_per_auction_echo_saturated),
            );
        }
    }

    fn targets_section(&self, out: &mut String) {
        if self.targets.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nissue 19 targets (item 4), as ratios of this run's baselines:");
        for target in &self.targets {
            let shown = target.value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
            let verdict = match target.passed {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "  {:<32} {shown:>8}   target {:<7} {verdict:<12} {}",
                target.name, target.target, target.basis
            );
        }
    }

    fn instructions_section(&self, out: &mut String) {
        let Some(counts) = &self.instructions else { return };
        let _ = writeln!(
            out,
            "\ninstructions per auction (user space, {:?}, {} auctions at {:.0}/s after {} warm-up):",
            counts.counter, counts.auctions, counts.rate, counts.warmup_auctions
        );
        for side in [&counts.echo, &counts.engine] {
            let _ = writeln!(
                out,
                "  {:<7} {:>14} instructions in the window, {:>6} answered, {:>3} errors   {:>12.0} per auction",
                side.process, side.instructions, side.answered, side.errors, side.per_auction
            );
        }
        if let Some(ratio) = counts.ratio {
            let _ = writeln!(out, "  engine ÷ echo: {ratio:.3}");
        }
    }

    fn scaling_section(&self, out: &mut String) {
        if self.scaling.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nscaling, closed loop: engine (and echo) pinned to the first N CPUs, buyers and generator on the rest\n{:>6} {:<8} {:<8} {:>6} {:>12} {:>9} {:>12} {:>9} {:>12}",
            "cores", "engine", "rest", "conc.", "engine/s", "linear", "echo/s", "linear", "engine busy"
        );
        for row in &self.scaling {
            let fraction = |f: Option<f64>| f.map_or_else(|| "n/a".to_owned(), |f| format!("{f:.2}"));
            let _ = writeln!(
                out,
                "{:>6} {:<8} {:<8} {:>6} {:>12.0} {:>9} {:>12.0} {:>9} {:>12}",
                row.engine_cores,
                row.engine_cpus,
                row.rest_cpus,
                row.concurrency,
                row.engine_per_s,
                fraction(row.engine_linear),
                row.echo_per_s,
                fraction(row.echo_linear),
                row.engine_busy.map_or_else(|| "n/a".to_owned(), |b| format!("{b:.2} cores"))
            );
        }
        let _ = writeln!(
            out,
            "(linear: auctions/s ÷ (cores × the first row's auctions/s per core); target >= 0.7. An engine busy well \
             under its cores was not the bottleneck: give the buyers more threads, --buyer-threads)"
        );
    }
}
