//! # gavel-loadtest — Gavel's speed, measured honestly
//!
//! Open-loop seller load at a fixed rate against the engine and its simulated buyers, every latency timed
//! from the request's scheduled send time into HDR histograms, next to baselines measured in the same run
//! (see `PERF.md`): the raw fan-out to the same buyers (the floor) and an echo fan-out server (throughput).
//!
//! ## Layout
//! - [`scenario`] — a scenario file into validated settings: buyers, request mix, rate, bounds.
//! - [`load`] — the open-loop schedule, the closed-loop saturation, and the histograms.
//! - [`conn`] — the raw hyper `client::conn` pool every request of the load test goes through.
//! - [`seller`] — the seller's requests to the engine (ping, ping + post, direct post).
//! - [`baseline`] — the raw fan-out (floor) and the echo fan-out server.
//! - [`engine`] — the generated config and the engine under test (child process or `--target`).
//! - [`run`] — the `run`, `floor` and `max-rate` modes.
//! - [`report`] — the table, the JSON and the PERF.md ratios.

pub mod baseline;
pub mod conn;
pub mod engine;
pub mod load;
pub mod report;
pub mod run;
pub mod scenario;
pub mod seller;
