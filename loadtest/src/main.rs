//! The `gavel-loadtest` command line. Thin: parses arguments, builds the runtimes, calls the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gavel_loadtest::engine::{self, ChildOptions, EngineSource};
use gavel_loadtest::report::Report;
use gavel_loadtest::run::{self, Options, Runtimes};
use gavel_loadtest::scenario::Scenario;

#[derive(Parser)]
#[command(
    name = "gavel-loadtest",
    version,
    about = "Open-loop load test of the Gavel engine against same-run baselines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Floor and engine phases alternating, the throughput runs, and PERF.md's ratios.
    Run(RunArgs),
    /// Search for the highest rate whose p99 stays under the deadline.
    MaxRate(RunArgs),
    /// Only the raw fan-out baseline (a plain hyper client pinging the simulated buyers).
    Floor(CommonArgs),
    /// Print the engine config a scenario needs, for an engine started by hand and used with --target.
    Config {
        scenario: PathBuf,
        /// The address the engine will listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Serve the engine on a config (what `gavel serve` does); used when no `gavel` binary is at hand.
    #[command(hide = true)]
    ServeEngine {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// The scenario file (loadtest/scenarios/*.toml).
    scenario: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seller requests per second instead of the scenario's.
    #[arg(long)]
    rate: Option<f64>,
    /// Worker threads of the simulated buyers' runtime.
    #[arg(long, default_value_t = 1)]
    buyer_threads: usize,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// A running engine on loopback (started on `gavel-loadtest config` output) instead of a child process.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// The engine binary to start (default: this executable, whose `serve-engine` runs the same library code).
    #[arg(long)]
    engine_bin: Option<PathBuf>,
    /// Worker threads of the engine (and of the echo server, for a fair comparison); default: one per core.
    #[arg(long)]
    engine_threads: Option<usize>,
    /// Pin the engine to these CPUs with `taskset -c` (e.g. "0" or "2-5").
    #[arg(long)]
    engine_cpus: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ServeEngine { config, listen } => serve_engine(&config, listen),
        Command::Config { scenario, listen } => match Scenario::load(&scenario) {
            Ok(scenario) => print_config(&scenario, listen),
            Err(error) => fail(&error.to_string()),
        },
        Command::Run(args) => measure(Mode::Run, &args.common, Some(&args)),
        Command::MaxRate(args) => measure(Mode::MaxRate, &args.common, Some(&args)),
        Command::Floor(common) => measure(Mode::Floor, &common, None),
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Run,
    MaxRate,
    Floor,
}

fn measure(mode: Mode, common: &CommonArgs, run_args: Option<&RunArgs>) -> ExitCode {
    let scenario = match Scenario::load(&common.scenario) {
        Ok(scenario) => scenario,
        Err(error) => return fail(&error.to_string()),
    };
    if common.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return fail("--rate must be > 0");
    }
    let source = match run_args {
        Some(RunArgs { target: Some(target), .. }) => match engine::loopback_only(*target) {
            Ok(addr) => EngineSource::Target(addr),
            Err(why) => return fail(&why),
        },
        Some(RunArgs { engine_bin: Some(bin), .. }) => EngineSource::Binary(bin.clone()),
        _ => engine::default_source(),
    };
    let engine_threads = run_args.and_then(|a| a.engine_threads);
    let options = Options {
        source,
        child: ChildOptions { threads: engine_threads, cpus: run_args.and_then(|a| a.engine_cpus.clone()) },
        rate: common.rate,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let echo_threads = engine_threads.unwrap_or(cpus);
    let buyer_threads = common.buyer_threads.max(1);
    let built = (runtime("sim-buyer", buyer_threads), runtime("echo", echo_threads), current_thread());
    let (buyers_rt, echo_rt, generator) = match built {
        (Ok(b), Ok(e), Ok(g)) => (b, e, g),
        _ => return fail("cannot start the runtimes"),
    };
    let runtimes =
        Runtimes { buyers: buyers_rt.handle().clone(), buyer_threads, echo: echo_rt.handle().clone(), echo_threads };
    let outcome = generator.block_on(async {
        match mode {
            Mode::Run => run::run(&scenario, &options, &runtimes).await,
            Mode::MaxRate => run::max_rate(&scenario, &options, &runtimes).await,
            Mode::Floor => run::floor(&scenario, &options, &runtimes).await,
        }
    });
    // The runtimes shut down here, outside any async context.
    drop(generator);
    drop(echo_rt);
    drop(buyers_rt);
    match outcome {
        Ok(report) => emit(&report, common.json.as_deref()),
        Err(why) => fail(&why),
    }
}

fn emit(report: &Report, json: Option<&Path>) -> ExitCode {
    println!("{}", report.table());
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(report) {
            Ok(text) => text,
            Err(error) => return fail(&format!("cannot render the report as JSON: {error}")),
        };
        if let Err(error) = std::fs::write(path, text) {
            return fail(&format!("cannot write {}: {error}", path.display()));
        }
        println!("report written to {}", path.display());
    }
    ExitCode::SUCCESS
}

fn print_config(scenario: &Scenario, listen: SocketAddr) -> ExitCode {
    let mut addrs = Vec::new();
    for index in 0..scenario.buyers.len() {
        match run::buyer_port(scenario, index) {
            Ok(port) => addrs.push(SocketAddr::from(([127, 0, 0, 1], port))),
            Err(why) => return fail(&why),
        }
    }
    print!("{}", engine::config_text(scenario, &addrs, listen, Path::new("data/loadtest")));
    ExitCode::SUCCESS
}

/// `gavel serve`, from this binary: the same library code, so a fresh checkout needs no second build.
fn serve_engine(config: &Path, listen: Option<SocketAddr>) -> ExitCode {
    // The filter from GAVEL_LOG / RUST_LOG, as `gavel serve` without `--log`.
    if let Err(error) = gavel::logging::init(None, gavel::logging::LogFormat::Text) {
        return fail(&error);
    }
    let loaded = match gavel::config::load_file(config) {
        Ok(loaded) => loaded,
        Err(problems) => return fail(&format!("{} is not valid: {problems}", config.display())),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    runtime.block_on(async {
        let server = match gavel::app::start(loaded, listen).await {
            Ok(server) => server,
            Err(error) => return fail(&format!("cannot listen: {error}")),
        };
        gavel::signals::wait_for_stop().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn runtime(name: &str, threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build()
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn fail(why: &str) -> ExitCode {
    eprintln!("gavel-loadtest: {why}");
    ExitCode::FAILURE
}
