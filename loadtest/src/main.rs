//! The `gavel-loadtest` command line. Thin: parses arguments, builds the runtimes, calls the library.

/// The allocator `gavel` runs with, so `serve-engine` is the engine as shipped; the echo and the generator in this
/// binary get it too, so the baselines are measured on the same footing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gavel_loadtest::baseline::{parse_leg, EchoServer, FanOut};
use gavel_loadtest::cpu::{self, Counter};
use gavel_loadtest::engine::{self, ChildOptions, EngineSource};
use gavel_loadtest::instructions::{self, CpuSettings};
use gavel_loadtest::progress::{Progress, Style};
use gavel_loadtest::report::Report;
use gavel_loadtest::run::{self, Options, Runtimes};
use gavel_loadtest::scenario::Scenario;
use gavel_loadtest::{cluster, maxrate, plot, scale, summary};

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
    /// Floor, echo and engine phases alternating at one rate, the throughput runs, CPU per auction, the ratios.
    Run(RunArgs),
    /// Search for the highest rate whose p99 stays within 2x the floor's p99 + 1 ms, with no errors.
    MaxRate(RunArgs),
    /// The max-rate search, then `run` at half the rate found: every issue-19 target judged in one command.
    Targets(RunArgs),
    /// Instructions per auction of the engine and the echo fan-out server (callgrind, or perf where it works).
    Cpu(CpuArgs),
    /// Auctions per second with the engine pinned to 1, 2, 4, 8 ... CPUs and buyers and generator on the rest.
    Scale(ScaleArgs),
    /// Only the raw fan-out baseline (a plain hyper client pinging the simulated buyers).
    Floor(CommonArgs),
    /// One node against a cluster of --nodes on PostgreSQL and Redis (GAVEL_POSTGRES_URL, GAVEL_REDIS_URL), the
    /// seller's load spread over the nodes, then a capped buyer that must receive no more than its cap.
    Cluster(ClusterArgs),
    /// Print the JSON reports of earlier runs (--json) as BENCHMARKS.md's Markdown tables.
    Summary {
        /// Report files, in the order their rows should appear.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
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
        /// As `gavel serve --node-id` (a node of a cluster).
        #[arg(long)]
        node_id: Option<String>,
        /// As `gavel serve --data-dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve the echo fan-out baseline: every request fans out to the buyers, then gets a fixed answer.
    #[command(hide = true)]
    ServeEcho {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        deadline_ms: u64,
        /// ADDR=TIMEOUT_MS of one buyer; repeated.
        #[arg(long)]
        buyer: Vec<String>,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// The scenario file (loadtest/scenarios/*.toml).
    scenario: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw every phase's latency percentile distribution into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Seller requests per second instead of the scenario's (max-rate and targets: the first rate tried).
    #[arg(long)]
    rate: Option<f64>,
    /// Worker threads of the simulated buyers' runtime.
    #[arg(long, default_value_t = 1)]
    buyer_threads: usize,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct EngineArgs {
    /// The engine binary to start (default: this executable, whose `serve-engine` runs the same library code).
    #[arg(long)]
    engine_bin: Option<PathBuf>,
    /// Worker threads of the engine (its `server.workers` default) and of the echo fan-out server; default:
    /// one per core.
    #[arg(long)]
    engine_threads: Option<usize>,
    /// Pin the engine and the echo fan-out server to these CPUs with `taskset -c` (e.g. "0" or "2-5").
    #[arg(long)]
    engine_cpus: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// A running engine on loopback (started on `gavel-loadtest config` output) instead of a child process.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// The process id of the --target engine, for its CPU per auction.
    #[arg(long, requires = "target")]
    target_pid: Option<u32>,
}

#[derive(Args)]
struct ClusterArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// How many nodes the cluster has.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The daily cap of the last buyer in the cap phase.
    #[arg(long, default_value_t = 25)]
    cap: u32,
    /// Direct posts sent in the cap phase, spread over the nodes.
    #[arg(long, default_value_t = 400)]
    cap_posts: u64,
}

#[derive(Args)]
struct CpuArgs {
    /// The scenario file (loadtest/scenarios/*.toml).
    scenario: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// How to count: perf (hardware counters, where they work) or callgrind; default: perf where it works.
    #[arg(long)]
    counter: Option<Counter>,
    /// Auctions in the counted window.
    #[arg(long, default_value_t = 400)]
    auctions: u64,
    /// Auctions before the window.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Auctions per second (low: a server under callgrind runs ~50x slower).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Worker threads of the simulated buyers' runtime.
    #[arg(long, default_value_t = 1)]
    buyer_threads: usize,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
    /// Count an engine in cluster mode: a node of a fresh exchange on the machine's PostgreSQL and Redis
    /// (GAVEL_POSTGRES_URL, GAVEL_REDIS_URL), removed at the end.
    #[arg(long)]
    cluster: bool,
    /// Keep callgrind's dumps in this folder (`callgrind_annotate --inclusive=yes <dump>` shows where the
    /// instructions go); by default they are removed with the run.
    #[arg(long)]
    dumps: Option<PathBuf>,
}

#[derive(Args)]
struct ScaleArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The engine binary to start (default: this executable's `serve-engine`).
    #[arg(long)]
    engine_bin: Option<PathBuf>,
    /// Engine core counts, each run with the engine and echo on CPUs 0..N-1 and this process on the rest.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    cores: Vec<usize>,
}

/// What to measure, with the settings only one mode has.
enum Mode {
    Run,
    MaxRate,
    Targets,
    Floor,
    Cpu(CpuSettings),
    Scale(Vec<usize>),
    Cluster(cluster::ClusterOptions),
}

/// The settings every measuring mode shares, from whichever arguments it has.
struct Plan {
    scenario: PathBuf,
    json: Option<PathBuf>,
    plot: Option<PathBuf>,
    rate: Option<f64>,
    buyer_threads: usize,
    quiet: bool,
    source: Result<EngineSource, String>,
    child: ChildOptions,
    target_pid: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Off for every process of the load test (the engine, the echo, the buyers and the generator inherit it),
    // as `gavel` itself turns it off: each side measured as it runs in production.
    if let Err(error) = gavel::app::without_transparent_huge_pages() {
        eprintln!("gavel-loadtest: transparent huge pages stay on ({error}): expect millisecond stalls");
    }
    match cli.command {
        Command::ServeEngine { config, listen, node_id, data_dir } => {
            serve_engine(&config, gavel::app::NodeOptions { listen, node_id, data_dir })
        }
        Command::ServeEcho { listen, deadline_ms, buyer } => serve_echo(listen, deadline_ms, &buyer),
        Command::Config { scenario, listen } => match Scenario::load(&scenario) {
            Ok(scenario) => print_config(&scenario, listen),
            Err(error) => fail(&error.to_string()),
        },
        Command::Summary { reports } => print_summary(&reports),
        Command::Run(args) => measure(Mode::Run, run_plan(args)),
        Command::MaxRate(args) => measure(Mode::MaxRate, run_plan(args)),
        Command::Targets(args) => measure(Mode::Targets, run_plan(args)),
        Command::Floor(common) => measure(Mode::Floor, common_plan(common, None, EngineArgs::none())),
        Command::Cpu(args) => {
            let settings = CpuSettings {
                counter: args.counter.unwrap_or_else(cpu::pick_counter),
                auctions: args.auctions.max(1),
                warmup: args.warmup,
                rate: args.rate,
                cluster: args.cluster,
                dumps: args.dumps,
            };
            let common = CommonArgs {
                scenario: args.scenario,
                json: args.json,
                plot: None,
                rate: Some(args.rate),
                buyer_threads: args.buyer_threads,
                quiet: args.quiet,
            };
            measure(Mode::Cpu(settings), common_plan(common, None, args.engine))
        }
        Command::Cluster(args) => {
            let settings =
                cluster::ClusterOptions { nodes: args.nodes.max(1), cap: args.cap, cap_posts: args.cap_posts };
            measure(Mode::Cluster(settings), common_plan(args.common, None, args.engine))
        }
        Command::Scale(args) => {
            let engine = EngineArgs { engine_bin: args.engine_bin, engine_threads: None, engine_cpus: None };
            measure(Mode::Scale(args.cores), common_plan(args.common, None, engine))
        }
    }
}

impl EngineArgs {
    fn none() -> EngineArgs {
        EngineArgs { engine_bin: None, engine_threads: None, engine_cpus: None }
    }
}

fn run_plan(args: RunArgs) -> Plan {
    let mut plan = common_plan(args.common, args.target, args.engine);
    plan.target_pid = args.target_pid;
    plan
}

fn common_plan(common: CommonArgs, target: Option<SocketAddr>, engine: EngineArgs) -> Plan {
    let source = match (target, engine.engine_bin) {
        (Some(target), _) => engine::loopback_only(target).map(EngineSource::Target),
        (None, Some(bin)) => Ok(EngineSource::Binary(bin)),
        (None, None) => Ok(engine::default_source()),
    };
    Plan {
        scenario: common.scenario,
        json: common.json,
        plot: common.plot,
        rate: common.rate,
        buyer_threads: common.buyer_threads.max(1),
        quiet: common.quiet,
        source,
        child: ChildOptions {
            threads: engine.engine_threads,
            cpus: engine.engine_cpus,
            callgrind: None,
            extra_config: String::new(),
        },
        target_pid: None,
    }
}

fn measure(mode: Mode, plan: Plan) -> ExitCode {
    let scenario = match Scenario::load(&plan.scenario) {
        Ok(scenario) => scenario,
        Err(error) => return fail(&error.to_string()),
    };
    if plan.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return fail("--rate must be > 0");
    }
    let source = match plan.source {
        Ok(source) => source,
        Err(why) => return fail(&why),
    };
    if matches!(source, EngineSource::Target(_)) && matches!(mode, Mode::Cpu(_) | Mode::Scale(_)) {
        return fail("cpu and scale start their own engine; --target does not apply");
    }
    let options = Options {
        source,
        child: plan.child,
        target_pid: plan.target_pid,
        rate: plan.rate,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let (buyers_rt, generator) = match (runtime("sim-buyer", plan.buyer_threads), current_thread()) {
        (Ok(b), Ok(g)) => (b, g),
        _ => return fail("cannot start the runtimes"),
    };
    let runtimes = Runtimes { buyers: buyers_rt.handle().clone(), buyer_threads: plan.buyer_threads };
    let progress = Progress::new(Style::detect(plan.quiet));
    let outcome = generator.block_on(async {
        match mode {
            Mode::Run => run::run(&scenario, &options, &runtimes, &progress).await,
            Mode::MaxRate => maxrate::max_rate(&scenario, &options, &runtimes, &progress).await,
            Mode::Targets => maxrate::targets(&scenario, &options, &runtimes, &progress).await,
            Mode::Floor => run::floor(&scenario, &options, &runtimes, &progress).await,
            Mode::Cpu(settings) => {
                instructions::instructions(&scenario, &options, &runtimes, &progress, settings).await
            }
            Mode::Scale(cores) => scale::scale(&scenario, &options, &runtimes, &progress, &cores).await,
            Mode::Cluster(settings) => cluster::cluster(&scenario, &options, &settings, &runtimes, &progress).await,
        }
    });
    // The status line goes before the report is printed; the runtimes shut down outside any async context.
    drop(progress);
    drop(generator);
    drop(buyers_rt);
    match outcome {
        Ok(report) => emit(&report, plan.json.as_deref(), plan.plot.as_deref()),
        Err(why) => fail(&why),
    }
}

fn emit(report: &Report, json: Option<&Path>, plot: Option<&Path>) -> ExitCode {
    println!("{}", report.table());
    if let Some(path) = plot {
        let title = format!("gavel-loadtest {}: latency by percentile, from the scheduled send time", report.scenario);
        if let Err(error) = std::fs::write(path, plot::svg(&title, &report.distributions)) {
            return fail(&format!("cannot write {}: {error}", path.display()));
        }
        println!("latency percentile plot written to {}", path.display());
    }
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

fn print_summary(paths: &[PathBuf]) -> ExitCode {
    let mut reports = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => return fail(&format!("cannot read {}: {error}", path.display())),
        };
        match serde_json::from_str(&text) {
            Ok(value) => reports.push((path.display().to_string(), value)),
            Err(error) => return fail(&format!("{} is not a JSON report: {error}", path.display())),
        }
    }
    print!("{}", summary::summary(&reports));
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
fn serve_engine(config: &Path, node: gavel::app::NodeOptions) -> ExitCode {
    // The filter from GAVEL_LOG / RUST_LOG, as `gavel serve` without `--log`.
    if let Err(error) = gavel::logging::init(None, gavel::logging::LogFormat::Text) {
        return fail(&error);
    }
    let loaded = match gavel::config::load_file(config) {
        Ok(loaded) => loaded,
        Err(problems) => return fail(&format!("{} is not valid: {problems}", config.display())),
    };
    // The runtime and worker threads of `gavel serve` (`app::runtime`, `http::workers`).
    let runtime = match gavel::app::runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    runtime.block_on(async {
        let server = match gavel::app::start_node(loaded, node).await {
            Ok(server) => server,
            Err(error) => return fail(&format!("cannot listen: {error}")),
        };
        gavel::signals::wait_for_stop().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// The echo fan-out baseline in a process of its own (started by the load test, like the engine).
fn serve_echo(listen: SocketAddr, deadline_ms: u64, buyers: &[String]) -> ExitCode {
    let legs = match buyers.iter().map(|b| parse_leg(b)).collect::<Result<Vec<_>, _>>() {
        Ok(legs) => legs,
        Err(why) => return fail(&format!("--buyer {why}")),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    runtime.block_on(async {
        let fan_out = Arc::new(FanOut::new(&legs, Duration::from_millis(deadline_ms)));
        let _server = match EchoServer::start(listen, fan_out).await {
            Ok(server) => server,
            Err(error) => return fail(&format!("cannot listen on {listen}: {error}")),
        };
        gavel::signals::wait_for_stop().await;
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
