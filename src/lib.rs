//! # Gavel — a real-time ping-post lead auction engine
//!
//! ## Layout
//! Each module is one part of `DESIGN.md`:
//! - [`config`] — the TOML file into validated, immutable types.
//! - [`domain`] — leads, money, bids, ranking and clearing: pure functions.
//! - [`delivery`] — the outbound HTTP to buyers and the classification of every answer.
//! - [`sim`] — simulated buyer endpoints (real HTTP servers on loopback) for the demo, tests and load test.
#![forbid(unsafe_code)]

pub mod config;
pub mod delivery;
pub mod domain;
pub mod sim;
