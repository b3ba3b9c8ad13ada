//! `cpu`: instructions per auction of the engine and of the echo fan-out server, counted over a fixed number
//! of auctions at a low fixed rate. Instructions, unlike seconds, do not move with what else the machine is
//! doing, so two versions of the code can be compared on a noisy machine: run the same command on each.
//!
//! Each server is a child process, counted on its own: under callgrind (both start under valgrind, counters
//! zeroed after the warm-up and dumped after the window, through `callgrind_control`), or with `perf stat`
//! attached for the window where the machine's hardware counters work. Only user-space instructions are
//! counted (callgrind cannot see the kernel), so a change that saves syscalls shows up less than it saves.

use std::path::PathBuf;

use serde::Serialize;

use crate::cluster::Exchange;
use crate::cpu::{Counter, Window};
use crate::progress::Progress;
use crate::report::{PhaseRow, Report};
use crate::run::{first_answered, Bench, Options, Runtimes, Side};
use crate::scenario::Scenario;

/// What the `cpu` mode runs.
#[derive(Debug, Clone)]
pub struct CpuSettings {
    pub counter: Counter,
    /// Auctions in the counted window.
    pub auctions: u64,
    /// Auctions before it (connections opened, caches and valgrind's translations warm).
    pub warmup: u64,
    /// Auctions per second, low enough that a server under callgrind (~50× slower) keeps up.
    pub rate: f64,
    /// The engine runs as a cluster node (one node of a fresh exchange).
    pub cluster: bool,
    /// Where callgrind's dumps are kept; `None`: a temporary folder removed at the end.
    pub dumps: Option<PathBuf>,
}

/// Instructions per auction of both servers.
#[derive(Debug, Clone, Serialize)]
pub struct Instructions {
    pub counter: Counter,
    pub rate: f64,
    pub auctions: u64,
    pub warmup_auctions: u64,
    pub echo: Counted,
    pub engine: Counted,
    /// Engine ÷ echo, per auction.
    pub ratio: Option<f64>,
}

/// One server's count over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Counted {
    pub process: String,
    pub instructions: u64,
    /// Auctions answered in the window (the count is divided by these).
    pub answered: u64,
    pub errors: u64,
    pub per_auction: f64,
}

/// Runs the warm-up and the counted window against the echo fan-out server, then the engine.
pub async fn instructions(
    scenario: &Scenario,
    options: &Options,
    runtimes: &Runtimes,
    progress: &Progress,
    settings: CpuSettings,
) -> Result<Report, String> {
    let temporary = tempfile::Builder::new().prefix("gavel-loadtest-cpu-").tempdir().map_err(|e| e.to_string())?;
    let dumps = match &settings.dumps {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            dir.clone()
        }
        None => temporary.path().to_owned(),
    };
    let mut options = options.clone();
    // Declared before the engine starts, so it is removed from the stores after the engine stops.
    let exchange = settings.cluster.then(Exchange::fresh);
    if let Some(exchange) = &exchange {
        options.child.extra_config = exchange.table(Some("cpu-0"));
    }
    if settings.counter == Counter::Callgrind {
        options.child.callgrind = Some(dumps.clone());
    }
    let bench = Bench::start(scenario, &options, runtimes, progress).await?;
    let mut report = bench.new_report(&options, runtimes);
    if let Some(exchange) = &exchange {
        report.layout.push(format!("the engine is node cpu-0 of exchange {} on PostgreSQL and Redis", exchange.name()));
    }
    let mut counted = Vec::new();
    for (side, name, pid) in [(Side::Echo, "echo", bench.echo.pid()), (Side::Engine, "engine", bench.engine.pid())] {
        let pid = pid.ok_or_else(|| format!("the {name}'s process id is unknown"))?;
        let label = format!("cpu {name}");
        bench.load(side, settings.rate, settings.warmup.max(1), progress.warmup(&label)).await;
        let window = Window::start(settings.counter, pid, &dumps).await?;
        let result = bench.load(side, settings.rate, settings.auctions, progress.phase(&label)).await;
        let instructions = window.finish().await?;
        let answered = first_answered(&result);
        let errors = result.ops.values().map(|s| s.errors).sum();
        report.phases.extend(PhaseRow::rows(&label, settings.rate, &result));
        counted.push(Counted {
            process: name.to_owned(),
            instructions,
            answered,
            errors,
            per_auction: instructions as f64 / answered.max(1) as f64,
        });
    }
    let [echo, engine]: [Counted; 2] = counted.try_into().map_err(|_| "internal: two servers counted".to_owned())?;
    let ratio = (echo.per_auction > 0.0).then(|| engine.per_auction / echo.per_auction);
    report.instructions = Some(Instructions {
        counter: settings.counter,
        rate: settings.rate,
        auctions: settings.auctions,
        warmup_auctions: settings.warmup,
        echo,
        engine,
        ratio,
    });
    Ok(report)
}
