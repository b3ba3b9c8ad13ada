//! What a process spends per auction: its CPU time from `/proc/<pid>/stat` (user + system, every thread it
//! ever had), and its user-space instructions from `perf stat` or `valgrind --tool=callgrind` — a count that
//! does not move with what else the machine is doing, for comparing two versions of the code.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// The unit of `/proc/<pid>/stat`'s times: USER_HZ, 100 on every Linux architecture this runs on (it is part
/// of the kernel's user ABI, independent of the kernel's own tick rate).
const USER_HZ: u64 = 100;

/// A process's CPU time so far (user + system), or `None` where `/proc` cannot tell (not Linux, or gone).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = parse_stat(&text)?;
    Some(Duration::from_millis((user + system) * 1000 / USER_HZ))
}

/// `utime` and `stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// The CPU a process spent over one phase.
#[derive(Debug, Clone, Serialize)]
pub struct CpuRow {
    /// The phase: `engine#1`, `echo@400`, `throughput engine#1`, …
    pub phase: String,
    /// `engine` or `echo`.
    pub process: String,
    pub cpu_s: f64,
    pub wall_s: f64,
    /// Auctions (first requests) answered in the phase.
    pub auctions: u64,
    /// CPU per auction (µs).
    pub us_per_auction: Option<f64>,
}

impl CpuRow {
    /// Cores the process kept busy on average.
    pub fn cores(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.cpu_s / self.wall_s
        } else {
            0.0
        }
    }
}

/// Starts measuring a process's CPU; `None` when it cannot be read (then no row is reported).
pub struct CpuMeter {
    pid: u32,
    cpu: Duration,
    wall: Instant,
}

impl CpuMeter {
    /// Reads the process's CPU now.
    pub fn start(pid: Option<u32>) -> Option<CpuMeter> {
        let pid = pid?;
        Some(CpuMeter { pid, cpu: process_cpu(pid)?, wall: Instant::now() })
    }

    /// The CPU spent since `start`, over `auctions` auctions.
    pub fn stop(self, phase: &str, process: &str, auctions: u64) -> Option<CpuRow> {
        let cpu = process_cpu(self.pid)?.saturating_sub(self.cpu).as_secs_f64();
        Some(CpuRow {
            phase: phase.to_owned(),
            process: process.to_owned(),
            cpu_s: cpu,
            wall_s: self.wall.elapsed().as_secs_f64(),
            auctions,
            us_per_auction: (auctions > 0).then(|| cpu * 1e6 / auctions as f64),
        })
    }
}

/// CPU per auction over several rows of one process (µs): total CPU ÷ total auctions.
pub fn per_auction(rows: &[CpuRow], process: &str, phase_prefix: &str) -> Option<f64> {
    let rows = rows.iter().filter(|r| r.process == process && r.phase.starts_with(phase_prefix));
    let (cpu, auctions) = rows.fold((0.0, 0), |(cpu, n), r| (cpu + r.cpu_s, n + r.auctions));
    (auctions > 0).then(|| cpu * 1e6 / auctions as f64)
}

/// How instructions are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    /// `perf stat -e instructions:u` attached to the running process: native speed, needs hardware counters.
    Perf,
    /// The process started under `valgrind --tool=callgrind`: ~50× slower, works everywhere.
    Callgrind,
}

/// `perf` when this machine's counters work (`perf stat -e instructions:u true` gives a number), else callgrind.
pub fn pick_counter() -> Counter {
    let probe = Command::new("perf")
        .args(["stat", "-x", ",", "-e", "instructions:u", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(output) if parse_perf_csv(&String::from_utf8_lossy(&output.stderr)).is_some() => Counter::Perf,
        _ => Counter::Callgrind,
    }
}

/// The instructions count of `perf stat -x ,` output (`12345,,instructions:u,…`); `None` when unsupported.
pub fn parse_perf_csv(text: &str) -> Option<u64> {
    text.lines()
        .filter(|line| line.contains("instructions"))
        .find_map(|line| line.split(',').next()?.trim().parse().ok())
}

/// The instructions of a callgrind dump: its `summary:` line (or `totals:`), first event (`Ir`).
pub fn parse_callgrind(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The arguments that put a program under callgrind, writing its dumps as `<dir>/callgrind.out.<pid>[.n]`.
pub fn callgrind_prefix(dir: &Path) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        // Only the totals are read: no per-instruction or per-jump detail, and a smaller dump.
        "--dump-instr=no".into(),
        "--collect-jumps=no".into(),
        format!("--callgrind-out-file={}/callgrind.out.%p", dir.display()),
    ]
}

/// Counts one process's user-space instructions over a window: `start`, the load, then `finish`.
pub enum Window {
    /// A `perf stat` attached to the process; stopped with SIGINT, which makes it write its count.
    Perf { perf: Child, output: PathBuf },
    /// A process under callgrind: its counters zeroed at the start, dumped at the end.
    Callgrind { pid: u32, dir: PathBuf },
}

impl Window {
    /// Starts counting `pid`'s instructions now. For callgrind, the process must run under
    /// [`callgrind_prefix`] with `dir`.
    pub async fn start(counter: Counter, pid: u32, dir: &Path) -> Result<Window, String> {
        match counter {
            Counter::Perf => {
                let output = dir.join(format!("perf.{pid}.csv"));
                let perf = Command::new("perf")
                    .args(["stat", "-x", ",", "-e", "instructions:u", "-p", &pid.to_string(), "-o"])
                    .arg(&output)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("cannot start perf: {e}"))?;
                // perf attaches to the threads a moment after it starts.
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(Window::Perf { perf, output })
            }
            Counter::Callgrind => {
                callgrind_control(&["--zero", &pid.to_string()]).await?;
                Ok(Window::Callgrind { pid, dir: dir.to_owned() })
            }
        }
    }

    /// Stops counting and returns the instructions of the window.
    pub async fn finish(self) -> Result<u64, String> {
        match self {
            Window::Perf { mut perf, output } => {
                run_quietly("kill", &["-INT", &perf.id().to_string()]).await?;
                let _ = tokio::task::spawn_blocking(move || perf.wait()).await;
                let text = std::fs::read_to_string(&output).map_err(|e| format!("perf wrote no count: {e}"))?;
                parse_perf_csv(&text).ok_or_else(|| format!("perf counted no instructions:\n{text}"))
            }
            Window::Callgrind { pid, dir } => {
                callgrind_control(&["--dump", &pid.to_string()]).await?;
                newest_dump(&dir, pid)
            }
        }
    }
}

/// The latest dump callgrind wrote for `pid` (`callgrind.out.<pid>.<n>`, the highest `n`).
fn newest_dump(dir: &Path, pid: u32) -> Result<u64, String> {
    let prefix = format!("callgrind.out.{pid}.");
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let newest = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .ok_or_else(|| format!("callgrind wrote no dump for process {pid} in {}", dir.display()))?;
    let text = std::fs::read_to_string(&newest.1).map_err(|e| format!("cannot read {}: {e}", newest.1.display()))?;
    parse_callgrind(&text).ok_or_else(|| format!("{} holds no summary line", newest.1.display()))
}

/// `callgrind_control <args>`, which reaches the process through valgrind's gdbserver (vgdb).
async fn callgrind_control(args: &[&str]) -> Result<(), String> {
    run_quietly("callgrind_control", args).await
}

async fn run_quietly(program: &str, args: &[&str]) -> Result<(), String> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    let output = command.output().await.map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        // A command name with a space and a parenthesis, as a thread name can have.
        let line = "4242 (gavel (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some((250, 37)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn our_own_cpu_time_can_be_read() {
        if !Path::new("/proc/self/stat").exists() {
            return;
        }
        assert!(process_cpu(std::process::id()).is_some());
    }

    #[test]
    fn cpu_per_auction_sums_the_phases_of_one_process() {
        let row = |phase: &str, process: &str, cpu_s: f64, auctions: u64| CpuRow {
            phase: phase.into(),
            process: process.into(),
            cpu_s,
            wall_s: 5.0,
            auctions,
            us_per_auction: None,
        };
        let rows = [
            row("engine#1", "engine", 0.30, 1_000),
            row("engine#2", "engine", 0.36, 1_000),
            row("echo#1", "echo", 0.20, 1_000),
            row("throughput engine#1", "engine", 9.0, 1),
        ];
        let engine = per_auction(&rows, "engine", "engine#").unwrap();
        assert!((engine - 330.0).abs() < 1e-9, "{engine}");
        assert!((per_auction(&rows, "echo", "echo#").unwrap() - 200.0).abs() < 1e-9);
        assert_eq!(per_auction(&rows, "echo", "throughput"), None);
        assert!((rows[0].cores() - 0.06).abs() < 1e-12);
    }

    #[test]
    fn instruction_counts_are_read_from_perf_and_callgrind_output() {
        let perf = "# started on Mon\n\n1234567,,instructions:u,2003104,100.00,,\n";
        assert_eq!(parse_perf_csv(perf), Some(1_234_567));
        assert_eq!(parse_perf_csv("<not supported>,,instructions:u,0,100.00,,\n"), None);
        let dump = "# callgrind format\nversion: 1\ncmd: gavel serve\nevents: Ir\nsummary: 98765432\n\nfn=(1) main\n";
        assert_eq!(parse_callgrind(dump), Some(98_765_432));
        assert_eq!(parse_callgrind("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(parse_callgrind("events: Ir\n"), None);
    }
}
