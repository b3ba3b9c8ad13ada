//! Config values for unit tests, with the contract's defaults, so a test states only what it changes.

use super::*;

/// A campaign with every default and floor "1.00".
pub fn campaign(id: &str) -> Campaign {
    Campaign {
        series: std::sync::Arc::new(crate::metrics::CampaignSeries::new(id)),
        id: id.to_owned(),
        ping_fields: vec!["postal_code".into(), "state".into(), "age".into()],
        required_fields: vec![],
        require_consent: false,
        ping_deadline_ms: 300,
        min_buyer_ms: 20,
        bid_ttl_s: 60,
        floor: Money::from_cents(100),
        max_bid: Money::from_cents(100_000),
        auction: AuctionKind::FirstPrice,
        sell: SellMode::Exclusive,
        distribution: Distribution::Auction,
        ranking: Ranking::Bid,
        return_rate_days: 30,
    }
}

/// A buyer of `campaigns` with every default, pinging and posting to unroutable placeholders.
pub fn buyer(id: &str, campaigns: &[&str]) -> Buyer {
    Buyer {
        id: id.to_owned(),
        api_key: Secret::new(format!("bk_{id}")),
        campaigns: campaigns.iter().map(|c| (*c).to_owned()).collect(),
        ping_url: Some(hyper::Uri::from_static("http://127.0.0.1:9/ping")),
        post_url: hyper::Uri::from_static("http://127.0.0.1:9/post"),
        notice_url: None,
        fixed_price: None,
        timeout_ms: 200,
        post_timeout_ms: 3000,
        priority: 0,
        weight: 1,
        billing: Billing::Prepaid,
        dedupe_days: 30,
        paused: false,
        self_pause: true,
        headers: vec![],
        field_map: HashMap::new(),
        static_fields: serde_json::Map::new(),
        response: ResponseAdapter::default(),
        filters: Filters::default(),
        caps: Caps::default(),
        ramp: None,
        sla: Sla::default(),
        returns: ReturnPolicy::default(),
    }
}
