//! The `smoke` scenario end to end through the real binary: the engine as a child process, simulated
//! buyers, every phase. Asserts that the report is complete and sane — never a speed figure.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"))
}

/// Runs `gavel-loadtest <args> --json <file>` and returns the JSON report and the printed table.
fn loadtest(args: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_gavel-loadtest"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("gavel-loadtest runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "exit {}\n{stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    let report = serde_json::from_str(&std::fs::read_to_string(&json).expect("report written")).expect("JSON report");
    (report, stdout)
}

fn as_u64(row: &Value, key: &str) -> u64 {
    row[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {row}"))
}

/// Every row has answers, no errors, ordered quantiles and a positive achieved rate.
fn assert_sane_rows(rows: &[Value]) {
    for row in rows {
        assert!(as_u64(row, "ok") > 0, "{row}");
        assert_eq!(as_u64(row, "errors"), 0, "{row}");
        let q: Vec<u64> = ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"].iter().map(|k| as_u64(row, k)).collect();
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "quantiles out of order in {row}");
        assert!(q[0] > 0, "{row}");
        assert!(row["achieved_rate"].as_f64().unwrap() > 0.0, "{row}");
    }
}

#[test]
fn run_reports_every_phase_the_throughput_and_the_ratios() {
    let (report, table) = loadtest(&["run", scenario("smoke").to_str().unwrap()]);
    let phases = report["phases"].as_array().expect("phases");
    let names: Vec<String> =
        phases.iter().map(|r| format!("{} {}", r["phase"].as_str().unwrap(), r["op"].as_str().unwrap())).collect();
    for expected in ["floor#1 fanout", "engine#1 ping", "engine#1 post", "engine#1 direct"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    assert_sane_rows(phases);
    // Every scheduled engine request was answered: pings and direct posts are the first requests.
    let engine: Vec<&Value> = phases.iter().filter(|r| r["phase"] == "engine#1").collect();
    let first: u64 = engine.iter().filter(|r| r["op"] != "post").map(|r| as_u64(r, "ok")).sum();
    assert_eq!(first, as_u64(engine[0], "scheduled"));

    let throughput = report["throughput"].as_array().expect("throughput");
    assert_eq!(throughput.iter().map(|r| r["phase"].as_str().unwrap()).collect::<Vec<_>>(), ["echo#1", "engine#1"]);
    for row in throughput {
        // Each request in made at least one exchange out to the buyers.
        assert!(as_u64(row, "ok") > 0 && as_u64(row, "exchanges") > as_u64(row, "ok"), "{row}");
    }
    for key in ["overhead_ratio_p50", "overhead_ratio_p99", "throughput_ratio", "deadline_adherence_5ms"] {
        let value = report["ratios"][key].as_f64().unwrap_or_else(|| panic!("{key} missing: {}", report["ratios"]));
        assert!(value.is_finite() && value > 0.0, "{key} = {value}");
    }
    // The engine's own HDR quantiles came back from /metrics.
    assert!(report["engine_metrics"]["engine_overhead_p50"].as_f64().is_some(), "{}", report["engine_metrics"]);
    for heading in ["open loop", "throughput", "PERF.md figures", "overhead ratio p50"] {
        assert!(table.contains(heading), "{heading} missing from the table:\n{table}");
    }
}

#[test]
fn floor_runs_the_raw_baseline_alone() {
    let (report, _) = loadtest(&["floor", scenario("smoke").to_str().unwrap()]);
    let phases = report["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 1, "{phases:?}");
    assert_eq!(phases[0]["op"], "fanout");
    assert_sane_rows(phases);
    assert!(report["ratios"].is_null());
}

#[test]
fn max_rate_searches_in_bounded_steps() {
    let (report, _) = loadtest(&["max-rate", scenario("smoke").to_str().unwrap(), "--rate", "20"]);
    let steps: Vec<&str> = report["phases"].as_array().unwrap().iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert!(!steps.is_empty() && steps.iter().all(|s| s.starts_with("max-rate@")), "{steps:?}");
    // The smoke scenario allows two steps, each with up to three request kinds.
    let distinct: std::collections::BTreeSet<_> = steps.iter().collect();
    assert!(distinct.len() <= 2, "{steps:?}");
}

#[test]
fn a_target_off_loopback_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_gavel-loadtest"))
        .args(["run", scenario("smoke").to_str().unwrap(), "--target", "192.0.2.1:8080"])
        .output()
        .expect("gavel-loadtest runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
