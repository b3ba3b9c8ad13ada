//! An auction's trail as cluster mode keeps it in Redis, for `GET /admin/pings/{id}` on any node.
//!
//! ## Encoding
//! A format byte, then the trail in postcard: money as whole cents, times as integers, outcomes as their
//! labels. Written after every auction's answer, its JSON cost a cluster node 25,000 instructions an auction
//! in number formatting and escaping (BENCHMARKS.md, "Cluster mode"). A node reads it back into an
//! [`AuctionAudit`] and shows it as the embedded ring does, so the trail has one rendering. A trail that
//! starts with `{` is the JSON an earlier version wrote: read as it is, so nodes can be upgraded one at a time.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AuctionAudit, BuyerOutcome, PostAttemptRecord, SaleRecord};
use crate::domain::expected_value::ReturnRate;
use crate::domain::money::Money;

/// The first byte of a trail in postcard; a later layout takes the next number.
const POSTCARD_V1: u8 = 1;

/// Every label a buyer's outcome can have (`BuyerOutcome::outcome`).
const BUYER_OUTCOMES: [&str; 5] = ["excluded", "bid", "no_bid", "timeout", "error"];

/// Every label a post attempt can have (`PostAttemptRecord::outcome`).
const POST_OUTCOMES: [&str; 3] = ["accepted", "rejected", "error"];

#[derive(Serialize, Deserialize)]
struct Trail<'a> {
    ping_id: Cow<'a, str>,
    campaign: Cow<'a, str>,
    seller: Cow<'a, str>,
    received_at_ns: i64,
    deadline_ms: u64,
    elapsed_ns: u64,
    test: bool,
    buyers: Vec<Outcome<'a>>,
    quoted: Option<Sale<'a>>,
    sales: Vec<Sale<'a>>,
    posts: Vec<Post<'a>>,
}

#[derive(Serialize, Deserialize)]
struct Outcome<'a> {
    buyer: Cow<'a, str>,
    outcome: Cow<'a, str>,
    detail: Option<Cow<'a, str>>,
    latency_ms: Option<f64>,
    bid_cents: Option<i64>,
    /// Delivered and returned leads.
    return_rate: Option<(u64, u64)>,
    expected_value_cents: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Sale<'a> {
    buyer: Cow<'a, str>,
    lead_id: Cow<'a, str>,
    price_cents: i64,
    payout_cents: i64,
}

#[derive(Serialize, Deserialize)]
struct Post<'a> {
    buyer: Cow<'a, str>,
    lead_id: Cow<'a, str>,
    outcome: Cow<'a, str>,
    detail: Option<Cow<'a, str>>,
    latency_ms: f64,
}

/// The trail as stored, borrowing every text from the auction.
pub(super) fn to_bytes(audit: &AuctionAudit, sales: &[SaleRecord], posts: &[PostAttemptRecord]) -> Vec<u8> {
    let trail = Trail {
        ping_id: Cow::Borrowed(&audit.ping_id),
        campaign: Cow::Borrowed(&audit.campaign),
        seller: Cow::Borrowed(&audit.seller),
        received_at_ns: audit.received_at.timestamp_nanos_opt().unwrap_or(i64::MAX),
        deadline_ms: audit.deadline_ms,
        elapsed_ns: u64::try_from(audit.elapsed.as_nanos()).unwrap_or(u64::MAX),
        test: audit.test,
        buyers: audit.buyers.iter().map(Outcome::of).collect(),
        quoted: audit.quoted.as_ref().map(Sale::of),
        sales: sales.iter().map(Sale::of).collect(),
        posts: posts.iter().map(Post::of).collect(),
    };
    postcard::to_allocvec(&(POSTCARD_V1, &trail)).expect("a trail serializes into a vector")
}

/// The JSON of `GET /admin/pings/{id}` from a stored trail, in this version's encoding or an earlier
/// version's (JSON); `None` for anything else.
pub fn trail_json(bytes: &[u8]) -> Option<Value> {
    match bytes.split_first()? {
        (&POSTCARD_V1, rest) => from_postcard(rest).map(|audit| audit.to_json()),
        (b'{', _) => serde_json::from_slice(bytes).ok(),
        _ => None,
    }
}

fn from_postcard(bytes: &[u8]) -> Option<AuctionAudit> {
    let trail: Trail<'_> = postcard::from_bytes(bytes).ok()?;
    let buyers = trail.buyers.into_iter().map(Outcome::into_record).collect::<Option<Vec<_>>>()?;
    let audit = AuctionAudit::new(
        trail.ping_id.into_owned(),
        trail.campaign.into_owned(),
        trail.seller.into_owned(),
        DateTime::<Utc>::from_timestamp_nanos(trail.received_at_ns),
        trail.deadline_ms,
        Duration::from_nanos(trail.elapsed_ns),
        trail.test,
        buyers,
        trail.quoted.map(Sale::into_record),
    );
    audit.record_posts(trail.posts.into_iter().map(Post::into_record).collect::<Option<Vec<_>>>()?);
    for sale in trail.sales {
        audit.record_sale(sale.into_record());
    }
    Some(audit)
}

/// The label among `known` that `text` is: a `&'static str` again, as the records hold it.
fn known_label(known: &[&'static str], text: &str) -> Option<&'static str> {
    known.iter().copied().find(|label| *label == text)
}

impl<'a> Outcome<'a> {
    fn of(outcome: &'a BuyerOutcome) -> Outcome<'a> {
        Outcome {
            buyer: Cow::Borrowed(&outcome.buyer),
            outcome: Cow::Borrowed(outcome.outcome),
            detail: outcome.detail.as_deref().map(Cow::Borrowed),
            latency_ms: outcome.latency_ms,
            bid_cents: outcome.bid.map(Money::cents),
            return_rate: outcome.return_rate.map(|rate| (rate.delivered(), rate.returned())),
            expected_value_cents: outcome.expected_value.map(Money::cents),
        }
    }

    fn into_record(self) -> Option<BuyerOutcome> {
        Some(BuyerOutcome {
            buyer: self.buyer.into_owned(),
            outcome: known_label(&BUYER_OUTCOMES, &self.outcome)?,
            detail: self.detail.map(Cow::into_owned),
            latency_ms: self.latency_ms,
            bid: self.bid_cents.map(Money::from_cents),
            return_rate: self.return_rate.map(|(delivered, returned)| ReturnRate::new(delivered, returned)),
            expected_value: self.expected_value_cents.map(Money::from_cents),
        })
    }
}

impl<'a> Sale<'a> {
    fn of(sale: &'a SaleRecord) -> Sale<'a> {
        Sale {
            buyer: Cow::Borrowed(&sale.buyer),
            lead_id: Cow::Borrowed(&sale.lead_id),
            price_cents: sale.price.cents(),
            payout_cents: sale.payout.cents(),
        }
    }

    fn into_record(self) -> SaleRecord {
        SaleRecord {
            buyer: self.buyer.into_owned(),
            lead_id: self.lead_id.into_owned(),
            price: Money::from_cents(self.price_cents),
            payout: Money::from_cents(self.payout_cents),
        }
    }
}

impl<'a> Post<'a> {
    fn of(post: &'a PostAttemptRecord) -> Post<'a> {
        Post {
            buyer: Cow::Borrowed(&post.buyer),
            lead_id: Cow::Borrowed(&post.lead_id),
            outcome: Cow::Borrowed(post.outcome),
            detail: post.detail.as_deref().map(Cow::Borrowed),
            latency_ms: post.latency_ms,
        }
    }

    fn into_record(self) -> Option<PostAttemptRecord> {
        Some(PostAttemptRecord {
            buyer: self.buyer.into_owned(),
            lead_id: self.lead_id.into_owned(),
            outcome: known_label(&POST_OUTCOMES, &self.outcome)?,
            detail: self.detail.map(Cow::into_owned),
            latency_ms: self.latency_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An auction with every kind of outcome, a ranked bid with its return rate, a quote, posts and a sale.
    fn full_audit() -> AuctionAudit {
        let mut buyers: Vec<BuyerOutcome> =
            BUYER_OUTCOMES.iter().enumerate().map(|(n, label)| BuyerOutcome::new(format!("b{n}"), label)).collect();
        buyers[0].detail = Some("cap:daily".into());
        buyers[1].latency_ms = Some(12.345);
        buyers[1].bid = Some(Money::from_cents(1250));
        buyers[1].return_rate = Some(ReturnRate::new(40, 3));
        buyers[1].expected_value = Some(Money::from_cents(1156));
        buyers[4].detail = Some("http_500 \"quoted\" é".into());
        let sale = SaleRecord {
            buyer: "b1".into(),
            lead_id: "l_1".into(),
            price: Money::from_cents(1250),
            payout: Money::from_cents(1125),
        };
        let audit = AuctionAudit::new(
            "p_1".into(),
            "auto".into(),
            "acme".into(),
            DateTime::<Utc>::from_timestamp_nanos(1_796_000_000_123_456_789),
            250,
            Duration::from_nanos(1_234_567),
            true,
            buyers,
            Some(sale.clone()),
        );
        audit.record_posts(POST_OUTCOMES.iter().map(|label| PostAttemptRecord {
            buyer: "b1".into(),
            lead_id: "l_1".into(),
            outcome: label,
            detail: Some(format!("{label} detail")),
            latency_ms: 3.5,
        }));
        audit.record_sale(sale);
        audit
    }

    #[test]
    fn a_stored_trail_reads_back_as_the_same_json() {
        let audit = full_audit();
        let bytes = audit.to_bytes();
        assert_eq!(bytes[0], POSTCARD_V1);
        assert_eq!(trail_json(&bytes), Some(audit.to_json()));
        assert!(audit.to_json()["buyers"][1].get("return_rate").is_some(), "the rate is in the shown trail");
    }

    #[test]
    fn an_earlier_versions_json_trail_still_reads_and_anything_else_does_not() {
        let audit = full_audit();
        let json = serde_json::to_vec(&audit.to_json()).unwrap();
        assert_eq!(trail_json(&json), Some(audit.to_json()));
        assert_eq!(trail_json(b""), None);
        assert_eq!(trail_json(&[9, 1, 2]), None);
        let mut cut = audit.to_bytes();
        cut.truncate(cut.len() / 2);
        assert_eq!(trail_json(&cut), None, "a torn trail is not shown half");
    }
}
