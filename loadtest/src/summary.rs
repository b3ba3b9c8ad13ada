//! `summary`: the JSON reports of several runs as the Markdown tables of `BENCHMARKS.md` (the load-test table
//! by rate, instructions per auction, the max rate and issue 19's verdicts), so a before / after comparison
//! is copied, not retyped.

use std::fmt::Write;

use serde_json::Value;

/// The tables for `reports` (file name, parsed JSON), in the order given.
pub fn summary(reports: &[(String, Value)]) -> String {
    let mut runs = Vec::new();
    let mut counts = Vec::new();
    let mut searches = Vec::new();
    for (file, report) in reports {
        if !report["instructions"].is_null() {
            counts.push(instructions_row(file, report));
        }
        if report["steps"].as_array().is_some_and(|s| !s.is_empty()) {
            searches.push(search_row(file, report));
        }
        if !report["ratios"].is_null() {
            runs.push(run_row(file, report));
        }
    }
    let mut out = String::new();
    if !runs.is_empty() {
        out.push_str(
            "| report | rate/s | floor p50 / p99 (µs) | echo p50 / p99 | engine p50 / p99 | overhead ratio p50 / p99 \
             | CPU µs per auction, engine / echo (ratio) | throughput ratio |\n|---|---|---|---|---|---|---|---|\n",
        );
        runs.iter().for_each(|row| out.push_str(row));
    }
    if !counts.is_empty() {
        out.push_str(
            "\n| report | counter | auctions at rate | instructions per auction, engine | echo | engine ÷ echo |\n\
             |---|---|---|---|---|---|\n",
        );
        counts.iter().for_each(|row| out.push_str(row));
    }
    if !searches.is_empty() {
        out.push_str(
            "\n| report | max rate/s | p99 ratio at each rate tried | issue 19 targets |\n|---|---|---|---|\n",
        );
        searches.iter().for_each(|row| out.push_str(row));
    }
    out
}

fn run_row(file: &str, report: &Value) -> String {
    let ratios = &report["ratios"];
    // The rounds' rate: the engine rows' target of the last round (in `targets`, after the search steps).
    let rate = report["phases"]
        .as_array()
        .and_then(|rows| rows.iter().rev().find(|r| r["phase"].as_str().is_some_and(|p| p.starts_with("engine#"))))
        .and_then(|row| row["target_rate"].as_f64());
    let pair = |a: &str, b: &str| format!("{} / {}", int(&ratios[a]), int(&ratios[b]));
    let cpu = format!(
        "{} / {} ({})",
        int(&ratios["cpu_us_per_auction_engine"]),
        int(&ratios["cpu_us_per_auction_echo"]),
        fixed(&ratios["cpu_ratio"], 2)
    );
    format!(
        "| {file} | {} | {} | {} | {} | {} / {} | {cpu} | {} |\n",
        rate.map_or_else(|| "?".to_owned(), |r| format!("{r:.0}")),
        pair("floor_p50_us", "floor_p99_us"),
        pair("echo_p50_us", "echo_p99_us"),
        pair("engine_p50_us", "engine_p99_us"),
        fixed(&ratios["overhead_ratio_p50"], 2),
        fixed(&ratios["overhead_ratio_p99"], 2),
        fixed(&ratios["throughput_ratio"], 2),
    )
}

fn instructions_row(file: &str, report: &Value) -> String {
    let counts = &report["instructions"];
    format!(
        "| {file} | {} | {} at {}/s | {} | {} | {} |\n",
        counts["counter"].as_str().unwrap_or("?"),
        int(&counts["auctions"]),
        int(&counts["rate"]),
        thousands(&counts["engine"]["per_auction"]),
        thousands(&counts["echo"]["per_auction"]),
        fixed(&counts["ratio"], 3),
    )
}

fn search_row(file: &str, report: &Value) -> String {
    let steps: Vec<String> = report["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    let mark = match (s["passed"].as_bool(), s["floor_unsteady"].as_bool()) {
                        (Some(true), _) => "ok",
                        (_, Some(true)) => "unsteady floor",
                        _ => "no",
                    };
                    format!("{} {} {mark}", int(&s["rate"]), fixed(&s["p99_ratio"], 2))
                })
                .collect()
        })
        .unwrap_or_default();
    let targets: Vec<String> = report["targets"]
        .as_array()
        .map(|targets| {
            targets
                .iter()
                .map(|t| {
                    let verdict = match t["passed"].as_bool() {
                        Some(true) => "pass",
                        Some(false) => "FAIL",
                        None => "n/a",
                    };
                    format!("{} {} {verdict}", t["name"].as_str().unwrap_or("?"), fixed(&t["value"], 2))
                })
                .collect()
        })
        .unwrap_or_default();
    let max = report["max_rate"].as_f64().map_or_else(|| "none".to_owned(), |m| format!("{m:.0}"));
    format!("| {file} | {max} | {} | {} |\n", steps.join(", "), targets.join("; "))
}

fn int(value: &Value) -> String {
    value.as_f64().map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"))
}

fn fixed(value: &Value, digits: usize) -> String {
    value.as_f64().map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

/// `676356` as `676,356`.
fn thousands(value: &Value) -> String {
    let Some(v) = value.as_f64() else { return "n/a".to_owned() };
    let digits = format!("{v:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c.is_ascii_digit() {
            out.push(',');
        }
        let _ = write!(out, "{c}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_of_report_becomes_a_row_of_its_table() {
        let run = json!({
            "phases": [{"phase": "engine#2", "target_rate": 1000.0}],
            "steps": [],
            "instructions": null,
            "ratios": {
                "floor_p50_us": 300.0, "floor_p99_us": 1050.0, "echo_p50_us": 350.0, "echo_p99_us": 900.0,
                "engine_p50_us": 584.0, "engine_p99_us": 43000.0, "overhead_ratio_p50": 1.946, "overhead_ratio_p99": 40.95,
                "cpu_us_per_auction_engine": 330.0, "cpu_us_per_auction_echo": 220.0, "cpu_ratio": 1.5,
                "throughput_ratio": 0.81
            }
        });
        let cpu = json!({
            "ratios": null, "steps": [],
            "instructions": {"counter": "callgrind", "auctions": 400, "rate": 20.0, "ratio": 2.5563,
                "engine": {"per_auction": 676356.2}, "echo": {"per_auction": 264594.0}}
        });
        let search = json!({
            "ratios": null, "instructions": null, "max_rate": 1500.0,
            "steps": [{"rate": 200.0, "p99_ratio": 1.1, "passed": true}, {"rate": 3200.0, "p99_ratio": 40.0, "passed": false}],
            "targets": [{"name": "throughput ratio", "value": 0.81, "passed": true}]
        });
        let text = summary(&[("run.json".into(), run), ("cpu.json".into(), cpu), ("max.json".into(), search)]);
        assert!(
            text.contains(
                "| run.json | 1000 | 300 / 1050 | 350 / 900 | 584 / 43000 | 1.95 / 40.95 | 330 / 220 (1.50) | 0.81 |"
            ),
            "{text}"
        );
        assert!(text.contains("| cpu.json | callgrind | 400 at 20/s | 676,356 | 264,594 | 2.556 |"), "{text}");
        assert!(
            text.contains("| max.json | 1500 | 200 1.10 ok, 3200 40.00 no | throughput ratio 0.81 pass |"),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("|---")).count(), 3, "one header per table");
    }
}
