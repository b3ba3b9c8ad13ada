//! # Gavel — a real-time ping-post lead auction engine
//!
//! Sellers ping a PII-free preview of a lead; every buyer whose terms it fits is asked for a price under a
//! deadline; the best price is quoted; the seller posts the full lead and it is delivered to the winner, or
//! down the ranked bids (see `DESIGN.md` for the path of one lead).
//!
//! ## Layout
//! Each module is one part of `DESIGN.md`:
//! - [`config`] — the TOML file into validated, immutable types; every problem reported with its path.
//! - [`domain`] — leads and their normalization, money, bids, ranking and clearing: pure functions.
//! - [`gates`] — whether one buyer may be pinged for one lead, cheapest check first.
//! - [`health`] — per-buyer SLA windows and the circuit breaker: active → sla_paused → probing → active.
//! - [`capacity`] — caps, budgets, concurrency slots and the holds of winning bids, in the buyer's timezone.
//! - [`dedupe`] — the phones and emails each buyer bought or holds a bid on, for the duplicate gate.
//! - [`buyers`] — each buyer's running state (capacity, health, pauses), kept by id across reloads.
//! - [`auction`] — the deadline, the fan-out of pings, the held bids and the post cascade.
//! - [`delivery`] — the outbound HTTP client, buyer adapters, and classification of every buyer answer.
//! - [`ledger`] — double-entry accounts; the only way the auction touches money.
//! - [`live`] — the bounded broadcast of auction answers and sales that live views read.
//! - [`audit`] — a bounded ring of recent auctions for `/admin/pings/{id}`; [`metrics`] — Prometheus text.
//! - [`notices`] — win/loss notices to buyers: a bounded queue drained after the seller's answer.
//! - [`engine`] — the running exchange: composes the parts above for the seller's calls.
//! - [`ops`] — what operators, buyers and sellers can read and change, shared by the JSON APIs and the pages.
//! - [`http`] — the hyper server: worker threads (an auction stays on the one that accepted its connection),
//!   routing, authentication, body limits, error mapping. Thin.
//! - [`web`] — the operator console and the buyer and seller portals as pages; sessions, CSRF, live dashboard.
//! - [`ratelimit`] — each seller's `max_pings_per_second`; [`shedding`] — 503 `overloaded` past a limit of
//!   auctions in flight.
//! - [`app`] — startup and shutdown, and the node's [`readiness`] (`/readyz`); [`demo`] — `gavel demo`; [`sim`] — simulated buyers on loopback.
//! - [`ids`], [`time`], [`logging`], [`signals`] — small shared utilities.
#![forbid(unsafe_code)]

pub mod app;
pub mod auction;
pub mod audit;
pub mod buyers;
pub mod capacity;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod dedupe;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod gates;
pub mod health;
pub mod http;
pub mod ids;
pub mod ledger;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod notices;
pub mod ops;
pub mod ratelimit;
pub mod readiness;
pub mod shedding;
pub mod signals;
pub mod sim;
pub mod time;
pub mod web;
