//! The fan-out: gate every buyer of the campaign, ping the eligible ones at once, collect until the deadline.
//!
//! All pings of one auction are futures polled by the task that received the seller's request, so an
//! auction never hops between worker threads. Each ping carries its own time limit (the buyer's real time),
//! and the whole collection is also bounded by the auction's deadline.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::auction::deadline::Deadline;
use crate::audit::{round_ms, BuyerOutcome};
use crate::config::{Campaign, Config};
use crate::delivery::{ping_body, ping_buyer, BuyerClient, PingOutcome};
use crate::domain::lead::Lead;
use crate::domain::ranking::Bid;
use crate::gates::{self, GateInput};
use crate::metrics::Metrics;

/// One auction's input.
pub struct FanOut<'a> {
    pub config: &'a Config,
    pub campaign: &'a Campaign,
    pub lead: &'a Lead,
    pub ping_id: &'a str,
    pub deadline: Deadline,
    pub test: bool,
}

/// What came back from the buyers.
pub struct Collected {
    /// One entry per buyer of the campaign, in config order.
    pub outcomes: Vec<BuyerOutcome>,
    /// Every valid bid, pinged or fixed-price.
    pub bids: Vec<Bid>,
    /// Buyers that passed every gate.
    pub eligible: usize,
    /// Buyers that were sent a ping.
    pub pinged: usize,
}

/// Gates, pings and collects. Never waits past the deadline.
pub async fn collect_bids(client: &BuyerClient, metrics: &Metrics, input: FanOut<'_>) -> Collected {
    let FanOut { config, campaign, lead, ping_id, deadline, test } = input;
    let projection = lead.project(&campaign.ping_fields);
    let mut outcomes = Vec::new();
    let mut bids = Vec::new();
    let mut eligible = 0;
    let mut pending = FuturesUnordered::new();
    let now = chrono::Utc::now();

    for (buyer_index, buyer) in config.buyers_of(&campaign.id) {
        let slot = outcomes.len();
        let buyer_time = buyer.ping_url.as_ref().map(|_| deadline.for_buyer(Duration::from_millis(buyer.timeout_ms)));
        // A pinged buyer that has not answered when the deadline passes stays a timeout.
        outcomes.push(BuyerOutcome {
            buyer: buyer.id.clone(),
            outcome: "timeout",
            detail: None,
            latency_ms: None,
            bid: None,
        });
        if let Err(exclusion) = gates::check(&GateInput { buyer, campaign, lead, buyer_time, now }) {
            let detail = exclusion.detail();
            metrics.inc("gavel_buyer_exclusions_total", &[("buyer", &buyer.id), ("reason", &detail)]);
            outcomes[slot].outcome = "excluded";
            outcomes[slot].detail = Some(detail.into_owned());
            continue;
        }
        eligible += 1;
        match (&buyer.ping_url, buyer.fixed_price) {
            (_, Some(price)) => {
                let outcome = if price > campaign.max_bid {
                    PingOutcome::Error { kind: "bid_above_max".into() }
                } else {
                    PingOutcome::Bid { amount: price, bid_id: None }
                };
                record(&mut outcomes[slot], &mut bids, buyer_index, buyer.priority, buyer.weight, outcome, None);
            }
            (Some(url), None) => {
                let time = buyer_time.unwrap_or_default();
                let body = ping_body(ping_id, &campaign.id, &projection, buyer, time.as_millis() as u64, test);
                pending.push(async move {
                    let sent = Instant::now();
                    let outcome = ping_buyer(client, buyer, url, body, time, campaign.max_bid).await;
                    (slot, buyer_index, outcome, sent.elapsed())
                });
            }
            (None, None) => {
                // The loader refuses such a buyer; should one slip through, it costs only itself.
                let outcome = PingOutcome::Error { kind: "no_ping_url".into() };
                record(&mut outcomes[slot], &mut bids, buyer_index, buyer.priority, buyer.weight, outcome, None);
            }
        }
    }
    let pinged = pending.len();

    loop {
        match tokio::time::timeout_at(deadline.at(), pending.next()).await {
            Ok(Some((slot, buyer_index, outcome, latency))) => {
                let buyer = &config.buyers[buyer_index];
                metrics.observe("gavel_buyer_ping_seconds", &[("buyer", &buyer.id)], latency);
                // Time since the auction began, for the earliest-answer tie-break.
                let answered_after = deadline.elapsed();
                let bid_index = bids.len();
                record(
                    &mut outcomes[slot],
                    &mut bids,
                    buyer_index,
                    buyer.priority,
                    buyer.weight,
                    outcome,
                    Some(latency),
                );
                if let Some(bid) = bids.get_mut(bid_index) {
                    bid.answered_after = answered_after;
                }
            }
            Ok(None) => break,
            // The deadline passed with pings still out: they count as timeouts, and dropping them cancels them.
            Err(_) => break,
        }
    }
    for outcome in &outcomes {
        if outcome.outcome != "excluded" {
            metrics.inc("gavel_buyer_responses_total", &[("buyer", &outcome.buyer), ("outcome", outcome.outcome)]);
        }
    }
    Collected { outcomes, bids, eligible, pinged }
}

fn record(
    slot: &mut BuyerOutcome,
    bids: &mut Vec<Bid>,
    buyer: usize,
    priority: i64,
    weight: u32,
    outcome: PingOutcome,
    latency: Option<Duration>,
) {
    slot.outcome = outcome.label();
    slot.latency_ms = latency.map(round_ms);
    match outcome {
        PingOutcome::Bid { amount, bid_id } => {
            slot.bid = Some(amount);
            bids.push(Bid { buyer, amount, priority, weight, answered_after: Duration::ZERO, bid_id });
        }
        PingOutcome::Error { kind } => slot.detail = Some(kind),
        PingOutcome::NoBid | PingOutcome::Timeout => {}
    }
}
