//! The `gavel` command line (API.md section 8). Thin: parses arguments and calls the library.

/// mimalloc rather than the system allocator: a tenth fewer instructions per auction, where allocation was a
/// fifth of them (BENCHMARKS.md, "Issue 19, after").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gavel::logging::LogFormat;
use gavel::{app, config, demo};

#[derive(Parser)]
#[command(name = "gavel", version, about = "Real-time ping-post lead auction engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter: a level (error, warn, info, debug, trace) for Gavel alone, or tracing directives such as
    /// `gavel=debug,hyper=info`. Default: $GAVEL_LOG, else $RUST_LOG, else info.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    /// Log lines as `text` or as `json` objects.
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Listen here instead of the config's server.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// This node's id (GET /admin/cluster): 1 to 64 characters of a-z, 0-9, '_' and '-'. Default: the
        /// config's [cluster].node_id, else "single".
        #[arg(long, value_parser = node_id)]
        node_id: Option<String>,
        /// This node's data directory instead of the config's server.data_dir (nodes on one host need their own).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Validate a configuration file and print every problem (exit 1 on any).
    CheckConfig {
        /// The configuration file.
        path: PathBuf,
    },
    /// Simulated buyers plus the server on config/demo.toml, with curl commands to try.
    Demo {
        /// Listen here instead of the demo config's address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Three nodes of one exchange (ports 8080-8082) on PostgreSQL and Redis: GAVEL_POSTGRES_URL and
        /// GAVEL_REDIS_URL, by default the local servers (postgres://root@127.0.0.1:5432/test,
        /// redis://127.0.0.1:6379).
        #[arg(long)]
        cluster: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = if cli.log_format == "json" { LogFormat::Json } else { LogFormat::Text };
    if let Err(error) = gavel::logging::init(cli.log.as_deref(), format) {
        eprintln!("gavel: {error}");
        return ExitCode::FAILURE;
    }
    if let Err(error) = gavel::app::without_transparent_huge_pages() {
        tracing::warn!(%error, "transparent huge pages stay on: expect millisecond stalls as the heap grows");
    }
    // One thread for the accept loop, pages and housekeeping; the server's workers are threads of their own.
    let runtime = match gavel::app::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gavel: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::CheckConfig { path } => match config::load_file(&path) {
            Ok(config) => {
                println!(
                    "{}: ok (revision {}, {} sellers, {} campaigns, {} buyers)",
                    path.display(),
                    config.revision,
                    config.sellers.len(),
                    config.campaigns.len(),
                    config.buyers.len()
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("{}: {} problem(s)", path.display(), problems.0.len());
                for problem in &problems.0 {
                    eprintln!("  {problem}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Serve { config, listen, node_id, data_dir } => match config::load_file(&config) {
            Ok(loaded) => serve(loaded, app::NodeOptions { listen, node_id, data_dir }, None).await,
            Err(problems) => {
                eprintln!("gavel: {} is not valid:\n  {}", config.display(), problems.0.join("\n  "));
                ExitCode::FAILURE
            }
        },
        Command::Demo { listen, cluster } => {
            let loaded = match demo::load_config() {
                Ok(loaded) => loaded,
                Err(problems) => {
                    eprintln!(
                        "gavel demo: {} is not valid (run from the repository root):\n  {}",
                        demo::DEMO_CONFIG,
                        problems
                    );
                    return ExitCode::FAILURE;
                }
            };
            let buyers = match demo::start_buyers(&loaded).await {
                Ok(buyers) => buyers,
                Err(error) => {
                    eprintln!("gavel demo: cannot start the simulated buyers on ports 18101-18104: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let code = if cluster {
                serve_cluster(loaded, listen).await
            } else {
                let options = app::NodeOptions { listen, ..app::NodeOptions::default() };
                serve(loaded, options, Some(&demo::instructions)).await
            };
            drop(buyers);
            code
        }
    }
}

/// `--node-id`: the same rule as every id in the config file.
fn node_id(text: &str) -> Result<String, String> {
    if config::is_valid_id(text) {
        Ok(text.to_owned())
    } else {
        Err("must be 1 to 64 characters of a-z, 0-9, '_' and '-'".to_owned())
    }
}

type Banner<'a> = &'a dyn Fn(SocketAddr, &config::Config) -> String;

/// `gavel demo --cluster`: three nodes of the demo exchange in this process, sharing PostgreSQL and Redis.
async fn serve_cluster(config: config::Config, listen: Option<SocketAddr>) -> ExitCode {
    let first = listen.unwrap_or(config.server.listen);
    let mut nodes = Vec::new();
    for (index, node_id) in ["node-a", "node-b", "node-c"].into_iter().enumerate() {
        let node_config = match demo::cluster_config(&config, node_id) {
            Ok(node_config) => node_config,
            Err(error) => {
                eprintln!("gavel demo --cluster: {error}");
                return ExitCode::FAILURE;
            }
        };
        let listen = SocketAddr::new(first.ip(), first.port() + index as u16);
        let data_dir = Some(config.server.data_dir.join(node_id));
        let options = app::NodeOptions { listen: Some(listen), node_id: Some(node_id.to_owned()), data_dir };
        match app::start_node(node_config, options).await {
            Ok(server) => nodes.push(server),
            Err(error) => {
                eprintln!("gavel demo --cluster: {node_id}: {error} (are PostgreSQL and Redis running? see README)");
                return ExitCode::FAILURE;
            }
        }
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|node| node.addr).collect();
    println!("{}", demo::cluster_instructions(&addrs, &nodes[0].engine.config()));
    gavel::signals::wait_for_stop().await;
    for node in nodes {
        node.shutdown().await;
    }
    ExitCode::SUCCESS
}

async fn serve(config: config::Config, options: app::NodeOptions, banner: Option<Banner<'_>>) -> ExitCode {
    let revision = config.revision.clone();
    let server = match app::start_node(config, options).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("gavel: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %server.addr, %revision, "gavel listening");
    if let Some(banner) = banner {
        println!("{}", banner(server.addr, &server.engine.config()));
    }
    let hangups = tokio::spawn(gavel::signals::reload_on_hangup(Arc::clone(&server.engine)));
    gavel::signals::wait_for_stop().await;
    hangups.abort();
    tracing::info!("stopping: finishing in-flight auctions and posts");
    server.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
