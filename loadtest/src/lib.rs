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
//! - [`engine`] — the generated config, and the servers under test as child processes: the engine (or a
//!   running one, `--target`) and the echo fan-out server.
//! - [`progress`] — the phase, times, rate and running quantiles on stderr while a run goes.
//! - [`run`] — the bench every measuring mode starts, its phases, and the `run` and `floor` modes.
//! - [`criteria`] — the rules: when a rate is sustainable, and issue 19's targets as verdicts.
//! - [`maxrate`] — the `max-rate` search and the `targets` mode (the search, then everything at half of it).
//! - [`cpu`] — CPU time from `/proc` and instruction counts from perf or callgrind.
//! - [`instructions`] — the `cpu` mode: instructions per auction, engine and echo.
//! - [`scale`] — the `scale` mode: auctions per second by engine cores pinned.
//! - [`cluster`] — the `cluster` mode: one node against a cluster on PostgreSQL and Redis, and a cap kept.
//! - [`report`], [`table`] — the figures, their JSON, and the table printed.
//! - [`plot`] — the percentile series and the SVG chart of `--plot`.
//! - [`summary`] — JSON reports of several runs as `BENCHMARKS.md`'s tables.

pub mod baseline;
pub mod cluster;
pub mod conn;
pub mod cpu;
pub mod criteria;
pub mod engine;
pub mod instructions;
pub mod load;
pub mod maxrate;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run;
pub mod scale;
pub mod scenario;
pub mod seller;
pub mod summary;
pub mod table;
