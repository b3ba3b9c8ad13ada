//! Simulated buyer endpoints: real HTTP/1.1 servers on loopback that speak the buyer protocol
//! (API.md §3: pings, posts and win/loss notices), used by `gavel demo`, the integration tests and the load
//! test.
//!
//! ## Layout
//! - `spec` — [`SimBuyerSpec`]: what a simulated buyer does (latency, bids, failure shares, fixed replies),
//!   and the seeded draws made from it.
//! - `server` — [`SimBuyer`]: the accept loop, one hyper connection task per socket, shutdown on drop.
//! - `respond` — turns one request into one answer: routing, the drawn outcome, the JSON bodies.
//! - `record` — [`Recorded`] requests and the cheap counters the load test relies on.

mod record;
mod respond;
mod server;
mod spec;

pub use record::Recorded;
pub use server::SimBuyer;
pub use spec::{BidSpec, Latency, RawReply, SimBuyerSpec};

#[cfg(test)]
mod tests;
