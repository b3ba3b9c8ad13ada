//! `[[campaigns]]`: one campaign's table.

use super::reader::*;
use super::Registry;
use super::{AuctionKind, Campaign, Distribution, Ranking, SellMode};
use crate::domain::money::Money;
use crate::metrics::CampaignSeries;

pub(super) const AUCTION_KINDS: [(&str, AuctionKind); 2] =
    [("first_price", AuctionKind::FirstPrice), ("second_price", AuctionKind::SecondPrice)];

pub(super) const DISTRIBUTIONS: [(&str, Distribution); 4] = [
    ("auction", Distribution::Auction),
    ("waterfall", Distribution::Waterfall),
    ("round_robin", Distribution::RoundRobin),
    ("weighted", Distribution::Weighted),
];

pub(super) const RANKINGS: [(&str, Ranking); 2] = [("bid", Ranking::Bid), ("expected_value", Ranking::ExpectedValue)];

pub(super) fn read_campaign(mut s: Section, registry: &mut Registry, p: &mut Problems) -> Option<Campaign> {
    let owner = s.path.clone();
    let id = s.need("id", p).and_then(|f| f.id(p));
    let ping_fields = s.need("ping_fields", p).and_then(|f| read_ping_fields(&f, p));
    let required_fields = s.with_default("required_fields", Vec::new(), |f| f.list(p, Field::lead_key));
    let require_consent = s.with_default("require_consent", false, |f| f.bool(p));
    let ping_deadline_ms = s.with_default("ping_deadline_ms", 300, |f| f.uint(1, 5000, p));
    let min_buyer_ms = s.with_default("min_buyer_ms", 20, |f| f.uint(1, U32_MAX, p));
    let bid_ttl_s = s.with_default("bid_ttl_s", 60, |f| f.uint(1, U32_MAX, p));
    let floor = s.need("floor", p).and_then(|f| f.money(p));
    let max_bid = s.with_default("max_bid", Money::from_cents(100_000), |f| f.money(p));
    let auction = s.with_default("auction", AuctionKind::FirstPrice, |f| f.choice(&AUCTION_KINDS, p));
    let sell = read_sell(&mut s, p);
    let distribution = s.with_default("distribution", Distribution::Auction, |f| f.choice(&DISTRIBUTIONS, p));
    let ranking = s.with_default("ranking", Ranking::Bid, |f| f.choice(&RANKINGS, p));
    let return_rate_days = s.with_default("return_rate_days", 30, |f| f.uint(1, 365, p));
    // Expected value orders bids; the other distributions decide who goes first whatever the bids are.
    if let (Some(Ranking::ExpectedValue), Some(distribution)) = (ranking, distribution) {
        if distribution != Distribution::Auction {
            let name = DISTRIBUTIONS.iter().find(|(_, d)| *d == distribution).map_or("?", |(name, _)| *name);
            p.add(
                &s.child("ranking"),
                format!("\"expected_value\" needs distribution = \"auction\" (found \"{name}\")"),
            );
        }
    }
    if let (Some(min), Some(deadline)) = (min_buyer_ms, ping_deadline_ms) {
        if min >= deadline {
            p.add(&s.child("min_buyer_ms"), format!("must be less than ping_deadline_ms ({deadline})"));
        }
    }
    if let (Some(floor), Some(max_bid)) = (floor, max_bid) {
        if floor > max_bid {
            p.add(&s.child("floor"), format!("must not exceed max_bid ({max_bid})"));
        }
    }
    s.finish(p);
    registry.claim("campaigns", &owner, id.as_deref(), None, p);
    let id = id?;
    Some(Campaign {
        series: std::sync::Arc::new(CampaignSeries::new(&id)),
        id,
        ping_fields: ping_fields?,
        required_fields: required_fields?,
        require_consent: require_consent?,
        ping_deadline_ms: ping_deadline_ms?,
        min_buyer_ms: min_buyer_ms?,
        bid_ttl_s: bid_ttl_s?,
        floor: floor?,
        max_bid: max_bid?,
        auction: auction?,
        sell: sell?,
        distribution: distribution?,
        ranking: ranking?,
        return_rate_days: u32::try_from(return_rate_days?).ok()?,
    })
}

/// Ping fields are kept in the journal and sent to every bidder, so personal data may not be among them.
pub(super) fn read_ping_fields(f: &Field, p: &mut Problems) -> Option<Vec<String>> {
    let keys = f.list(p, Field::lead_key)?;
    let mut clean = true;
    for key in &keys {
        let instead = match key.as_str() {
            "phone" => "send phone_sha256 instead",
            "email" => "send email_sha256 instead",
            "first_name" | "last_name" | "address" => {
                "personal data goes only in the post; send phone_sha256 / email_sha256 to match leads"
            }
            _ => continue,
        };
        p.add(&f.path, format!("must not name \"{key}\" ({instead})"));
        clean = false;
    }
    clean.then_some(keys)
}

pub(super) fn read_sell(s: &mut Section, p: &mut Problems) -> Option<SellMode> {
    let shared = s.with_default("sell", false, |f| f.choice(&[("exclusive", false), ("shared", true)], p));
    let max_buyers = s.field("max_buyers");
    match (shared?, max_buyers) {
        (true, Some(f)) => {
            f.uint(2, 5, p).and_then(|n| u8::try_from(n).ok()).map(|max_buyers| SellMode::Shared { max_buyers })
        }
        (true, None) => {
            p.add(&s.child("max_buyers"), "is required with sell = \"shared\" (2 to 5)");
            None
        }
        (false, Some(f)) => f.fail("only applies with sell = \"shared\"; remove it", p),
        (false, None) => Some(SellMode::Exclusive),
    }
}
