//! The fan-out: gate every buyer of the campaign, ping the eligible ones at once, collect until the deadline.
//!
//! All pings of one auction are futures polled by the task that received the seller's request, so an
//! auction never hops between worker threads. Each ping has its own time limit (the buyer's real time), and
//! the whole collection is also bounded by the auction's deadline; one timer enforces them all. Concurrency
//! slots of the buyers that passed the gates are taken together from the coordinator before the pings leave
//! (in cluster mode, one Redis round trip for all of them).

use std::time::Duration;

use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::auction::deadline::Deadline;
use crate::audit::{round_ms, BuyerOutcome};
use crate::buyers::Roster;
use crate::config::Campaign;
use crate::coordinator::{Coordinator, Unreachable};
use crate::dedupe::Contact;
use crate::delivery::{ping_buyer_untimed, BuyerClient, PingBodies, PingOutcome};
use crate::domain::expected_value::ReturnRate;
use crate::domain::lead::Lead;
use crate::domain::ranking::Bid;
use crate::gates::{self, GateInput};
use crate::health::PingSample;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::time::Moment;

/// One auction's input.
pub struct FanOut<'a> {
    pub roster: &'a Roster,
    pub campaign: &'a Campaign,
    pub lead: &'a Lead,
    pub ping_id: &'a str,
    pub deadline: Deadline,
    pub test: bool,
    /// The lead's phone and email digests, for the duplicate gate.
    pub contacts: &'a [Contact],
    pub ledger: &'a Ledger,
    /// A uniform draw in [0, 1) that decides whether probing buyers take part.
    pub draw: f64,
    pub coordinator: &'a Coordinator,
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
    /// The longest the auction waited on one buyer: the slowest answer, or until the deadline when a ping was
    /// left unanswered; zero when nobody was pinged. The auction's time less this is the engine's overhead.
    pub slowest_leg: Duration,
}

/// When a buyer's ping runs out of its time, and how to cut it off then.
struct BuyerLimit {
    at: Instant,
    cut_off: AbortHandle,
}

/// A buyer that passed the gates and will be pinged.
struct ToPing<'a> {
    slot: usize,
    buyer_index: usize,
    url: &'a hyper::Uri,
    time: Duration,
}

/// Gates, pings and collects. Never waits past the deadline. `Err` when the coordinator cannot be reached
/// for the buyers' concurrency slots (cluster mode): nobody was pinged.
pub async fn collect_bids(
    client: &BuyerClient,
    metrics: &Metrics,
    input: FanOut<'_>,
) -> Result<Collected, Unreachable> {
    let FanOut { roster, campaign, lead, ping_id, deadline, test, contacts, ledger, draw, coordinator } = input;
    let config = &*roster.config;
    let projection = lead.project(&campaign.ping_fields);
    let mut outcomes = Vec::new();
    let mut bids = Vec::new();
    let mut eligible = 0;
    let mut to_ping = Vec::new();
    let mut slots_wanted = Vec::new();
    // By slot, the buyer index of a ping not answered yet: those left when the deadline passes timed out.
    let mut unanswered = Vec::new();
    let (now, instant) = (Moment::new(chrono::Utc::now()), Instant::now());

    for (buyer_index, buyer) in config.buyers_of(&campaign.id) {
        let state = &roster.states[buyer_index];
        let slot = outcomes.len();
        unanswered.push(None);
        let buyer_time = buyer.ping_url.as_ref().map(|_| deadline.for_buyer(Duration::from_millis(buyer.timeout_ms)));
        // A pinged buyer that has not answered when the deadline passes stays a timeout.
        outcomes.push(BuyerOutcome::new(buyer.id.clone(), "timeout"));
        let gate = GateInput { buyer, state, campaign, lead, buyer_time, now: &now, instant, draw, contacts, ledger };
        let admitted = match gates::check(&gate) {
            Ok(admitted) => admitted,
            Err(exclusion) => {
                let detail = exclusion.detail();
                metrics.inc("gavel_buyer_exclusions_total", &[("buyer", &buyer.id), ("reason", &detail)]);
                outcomes[slot].outcome = "excluded";
                outcomes[slot].detail = Some(detail.into_owned());
                continue;
            }
        };
        eligible += 1;
        if let (Some(limit), Some(_), None) = (admitted.slot_limit, &buyer.ping_url, buyer.fixed_price) {
            slots_wanted.push((buyer_index, limit));
        }
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
                to_ping.push(ToPing { slot, buyer_index, url, time: buyer_time.unwrap_or_default() });
            }
            (None, None) => {
                // The loader refuses such a buyer; should one slip through, it costs only itself.
                let outcome = PingOutcome::Error { kind: "no_ping_url".into() };
                record(&mut outcomes[slot], &mut bids, buyer_index, buyer.priority, buyer.weight, outcome, None);
            }
        }
    }

    // Every slot at once; a buyer whose slots are all taken (on any node) is excluded for concurrency.
    let mut slots = coordinator.take_slots(roster, &slots_wanted).await?.into_iter();
    let mut pending = FuturesUnordered::new();
    let mut limits = Vec::new();
    let mut bodies = PingBodies::new(ping_id, &campaign.id, &projection, test);
    for ToPing { slot, buyer_index, url, time } in to_ping {
        let buyer = &config.buyers[buyer_index];
        let concurrency_slot = match slots_wanted.first() {
            Some(&(first, _)) if first == buyer_index => {
                slots_wanted.remove(0);
                match slots.next().flatten() {
                    Some(taken) => Some(taken),
                    None => {
                        eligible -= 1;
                        metrics.inc("gavel_buyer_exclusions_total", &[("buyer", &buyer.id), ("reason", "concurrency")]);
                        outcomes[slot].outcome = "excluded";
                        outcomes[slot].detail = Some("concurrency".into());
                        continue;
                    }
                }
            }
            _ => None,
        };
        let body = bodies.for_buyer(buyer, time.as_millis() as u64);
        unanswered[slot] = Some(buyer_index);
        let sent = Instant::now();
        let (cut_off, registration) = AbortHandle::new_pair();
        limits.push(BuyerLimit { at: sent + time, cut_off });
        pending.push(async move {
            // The concurrency slot is held while the ping is out, and freed when it ends or is dropped.
            let _slot = concurrency_slot;
            // Boxed: the exchange's state is a few kilobytes, and this future is moved into the set below.
            let ping = Box::pin(ping_buyer_untimed(client, buyer, url, body, time, campaign.max_bid));
            let outcome = Abortable::new(ping, registration).await.unwrap_or(PingOutcome::Timeout);
            (slot, buyer_index, outcome, sent.elapsed())
        });
    }
    let pinged = pending.len();
    metrics.outbound_exchanges.fetch_add(pinged as u64, std::sync::atomic::Ordering::Relaxed);
    let waiting = Instant::now();
    let mut slowest_leg = Duration::ZERO;

    // One timer for the whole auction, not one per buyer: every timer that becomes the runtime's earliest
    // costs a write to its wake-up eventfd (tokio's time driver), so ten per-buyer timeouts cost ten
    // syscalls. It goes off at each buyer's limit in turn, cutting off the pings past theirs, then at the
    // auction's deadline.
    limits.sort_by_key(|limit| limit.at);
    let mut cut = 0;
    let next_alarm = |cut: usize| limits.get(cut).map_or(deadline.at(), |limit| limit.at.min(deadline.at()));
    let alarm = tokio::time::sleep_until(next_alarm(cut));
    tokio::pin!(alarm);
    loop {
        let answer = tokio::select! {
            biased;
            answer = pending.next() => answer,
            () = &mut alarm => {
                let now = Instant::now();
                if now >= deadline.at() {
                    // The deadline passed with pings still out: they count as timeouts, and dropping them
                    // cancels them.
                    break;
                }
                while let Some(limit) = limits.get(cut).filter(|limit| limit.at <= now) {
                    // The ping answers `Timeout` at its next poll, which this loop collects like an answer.
                    limit.cut_off.abort();
                    cut += 1;
                }
                alarm.as_mut().reset(next_alarm(cut));
                continue;
            }
        };
        match answer {
            Some((slot, buyer_index, outcome, latency)) => {
                unanswered[slot] = None;
                slowest_leg = slowest_leg.max(latency);
                let buyer = &config.buyers[buyer_index];
                let state = &roster.states[buyer_index];
                state.series.ping_answered(metrics, latency);
                state.health.record_ping(&buyer.sla, health_sample(&outcome, latency), Instant::now());
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
            None => break,
        }
    }
    drop(pending);
    let now = Instant::now();
    if unanswered.iter().any(Option::is_some) {
        slowest_leg = now - waiting;
    }
    for buyer_index in unanswered.into_iter().flatten() {
        let buyer = &config.buyers[buyer_index];
        roster.states[buyer_index].health.record_ping(&buyer.sla, PingSample::Timeout, now);
    }
    // One outcome per buyer of the campaign, in its order.
    for ((buyer_index, _), outcome) in config.buyers_of(&campaign.id).zip(&outcomes) {
        if outcome.outcome != "excluded" {
            roster.states[buyer_index].series.responded(metrics, outcome.outcome);
        }
        // A buyer that fails costs only itself, but its operator wants to see it (inside the auction's span).
        if matches!(outcome.outcome, "timeout" | "error") {
            tracing::debug!(buyer = %outcome.buyer, outcome = outcome.outcome, detail = ?outcome.detail, "buyer ping failed");
        }
    }
    Ok(Collected { outcomes, bids, eligible, pinged, slowest_leg })
}

/// What an answer tells the buyer's health tracking.
fn health_sample(outcome: &PingOutcome, latency: Duration) -> PingSample {
    match outcome {
        PingOutcome::Bid { .. } | PingOutcome::NoBid => PingSample::Answered { latency },
        PingOutcome::Error { .. } => PingSample::Error { latency },
        PingOutcome::Timeout => PingSample::Timeout,
    }
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
            // The rate is read from the books once the fan-out is over, for campaigns that rank by it.
            let return_rate = ReturnRate::NO_HISTORY;
            bids.push(Bid { buyer, amount, priority, weight, answered_after: Duration::ZERO, bid_id, return_rate });
        }
        PingOutcome::Error { kind } => slot.detail = Some(kind),
        PingOutcome::NoBid | PingOutcome::Timeout => {}
    }
}
