//! `gavel demo`: simulated buyers on loopback plus the server on the shipped demo config, with curl commands
//! to try it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::config::{self, Config};
use crate::domain::money::Money;
use crate::sim::{BidSpec, Latency, SimBuyer, SimBuyerSpec};

/// The demo's config file, relative to the repository root.
pub const DEMO_CONFIG: &str = "config/demo.toml";

/// Starts the simulated buyers the demo config names. They run until dropped.
pub async fn start_buyers(config: &Config) -> std::io::Result<Vec<SimBuyer>> {
    let mut ports = BTreeSet::new();
    let mut buyers = Vec::new();
    for buyer in &config.buyers {
        let addr = buyer.ping_url.as_ref().unwrap_or(&buyer.post_url).authority().map(|a| a.as_str().to_owned());
        let Some(addr) = addr.and_then(|a| a.parse::<SocketAddr>().ok()) else { continue };
        if ports.insert(addr) {
            buyers.push(SimBuyer::start_on(addr, behaviour(&buyer.id)).await?);
        }
    }
    Ok(buyers)
}

/// How each demo buyer behaves (see the comments in config/demo.toml).
fn behaviour(buyer: &str) -> SimBuyerSpec {
    let cents = Money::from_cents;
    let quick = Latency::Uniform { min: Duration::from_millis(2), max: Duration::from_millis(8) };
    match buyer {
        "sunrise-insurance" => SimBuyerSpec {
            ping_latency: quick,
            bid: BidSpec::Uniform { min: cents(800), max: cents(1400) },
            seed: 1,
            ..SimBuyerSpec::default()
        },
        "harbor-auto" => SimBuyerSpec {
            ping_latency: quick,
            bid: BidSpec::Uniform { min: cents(600), max: cents(1200) },
            reject_share: 0.33,
            seed: 2,
            ..SimBuyerSpec::default()
        },
        "pacific-leads" => SimBuyerSpec {
            ping_latency: Latency::LogNormal { median: Duration::from_millis(40), sigma: 0.3 },
            bid: BidSpec::Uniform { min: cents(500), max: cents(1500) },
            no_bid_share: 0.2,
            seed: 3,
            ..SimBuyerSpec::default()
        },
        _ => SimBuyerSpec::default(),
    }
}

/// Loads the demo config from the working directory.
pub fn load_config() -> Result<Config, config::ConfigErrors> {
    config::load_file(Path::new(DEMO_CONFIG))
}

/// The demo config as a node of the demo exchange: `[cluster]` named `demo`, on the stores that
/// `GAVEL_POSTGRES_URL` and `GAVEL_REDIS_URL` name (the local servers by default).
pub fn cluster_config(config: &Config, node_id: &str) -> Result<Config, config::ConfigErrors> {
    let mut node = load_config()?;
    let url = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.to_owned());
    node.cluster = Some(config::ClusterConfig {
        name: "demo".to_owned(),
        node_id: Some(node_id.to_owned()),
        redis_url: config::Secret::new(url("GAVEL_REDIS_URL", "redis://127.0.0.1:6379")),
        postgres_url: config::Secret::new(url("GAVEL_POSTGRES_URL", "postgres://root@127.0.0.1:5432/test")),
    });
    debug_assert_eq!(node.revision, config.revision);
    Ok(node)
}

/// What `gavel demo --cluster` prints: the usual commands against the first node, and the cluster's own.
pub fn cluster_instructions(addrs: &[SocketAddr], config: &Config) -> String {
    let seller_key = config.sellers.first().map(|s| s.api_key.expose()).unwrap_or("SELLER_KEY");
    let admin = config.server.admin_token.expose();
    let [a, b, c] = [0, 1, 2].map(|i| addrs.get(i).map_or_else(String::new, |addr| format!("http://{addr}")));
    format!(
        r#"Gavel demo, cluster mode: three nodes of exchange "demo" on {a}, {b} and {c}, sharing PostgreSQL
(schema gavel_demo) and Redis (keys gavel:demo:*); {buyers} simulated buyers answer on loopback.

# 1. Ping on node A, post on node B: any node answers any call.
PING_ID=$(curl -s {a}/v1/ping -H 'Authorization: Bearer {seller_key}' -H 'Content-Type: application/json'   -d '{{"campaign": "auto-insurance", "lead": {{"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true}}}}'   | tee /dev/stderr | grep -o '"p_[0-9a-f]*"' | tr -d '"'); echo
curl -s {b}/v1/post -H 'Authorization: Bearer {seller_key}' -H 'Content-Type: application/json'   -d '{{"ping_id": "'$PING_ID'", "lead": {{"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true,
       "first_name": "Ada", "last_name": "Lovelace", "phone": "(415) 867-0100", "email": "ada@example.com"}}}}'; echo

# 2. The trail and the books, read on node C.
curl -s {c}/admin/pings/$PING_ID -H 'Authorization: Bearer {admin}'; echo
curl -s {c}/admin/ledger/accounts -H 'Authorization: Bearer {admin}'; echo

# 3. The exchange: its live nodes and the stores' health; and a node's readiness.
curl -s {a}/admin/cluster -H 'Authorization: Bearer {admin}'; echo
curl -s {b}/readyz; echo

Every command of `gavel demo` works against any of the three nodes too. Press Ctrl-C to stop."#,
        buyers = config.buyers.len(),
    )
}

/// The curl commands printed at start.
pub fn instructions(addr: SocketAddr, config: &Config) -> String {
    let seller_key = config.sellers.first().map(|s| s.api_key.expose()).unwrap_or("SELLER_KEY");
    let admin = config.server.admin_token.expose();
    let base = format!("http://{addr}");
    format!(
        r#"Gavel demo: the server listens on {base}; {buyers} simulated buyers answer on loopback.

# 0. The web pages: open {base}/login in a browser and sign in with one of these keys.
#    Operator console ({base}/console): {admin}
#    Buyer portal ({base}/portal), buyer {buyer_id}: {buyer_key}
#    Seller portal ({base}/portal), seller {seller_id}: {seller_key}

# 1. Ping: ask the buyers for a price (no PII in a ping).
PING_ID=$(curl -s {base}/v1/ping -H 'Authorization: Bearer {seller_key}' -H 'Content-Type: application/json' \
  -d '{{"campaign": "auto-insurance", "lead": {{"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true}}}}' \
  | tee /dev/stderr | grep -o '"p_[0-9a-f]*"' | tr -d '"'); echo

# 2. Post the full lead: it goes to the winner, or down the ranked bids if the winner rejects it.
LEAD_ID=$(curl -s {base}/v1/post -H 'Authorization: Bearer {seller_key}' -H 'Content-Type: application/json' \
  -d '{{"ping_id": "'$PING_ID'", "lead": {{"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true,
       "first_name": "Ada", "last_name": "Lovelace", "phone": "(415) 867-0100", "email": "ada@example.com"}}}}' \
  | tee /dev/stderr | grep -o '"l_[0-9a-f]*"' | head -n 1 | tr -d '"'); echo

# 3. The auction's audit trail: every buyer's outcome and every post attempt.
curl -s {base}/admin/pings/$PING_ID -H 'Authorization: Bearer {admin}'; echo

# 4. The buyer that bought the lead returns it; the other buyers' keys get 404 (a buyer never sees another's
#    lead). A buyer's first return is over its 10% rate cap, so it waits for the operator's review; the
#    operator approves it, which raises that buyer's return rate with this seller.
RETURN_ID=$(for KEY in {buyer_keys}; do
  curl -s {base}/v1/returns -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{{"lead_id": "'$LEAD_ID'", "reason": "wrong_number", "note": "number disconnected"}}'; echo
done | tee /dev/stderr | grep -o '"r_[0-9a-f]*"' | head -n 1 | tr -d '"')
curl -s '{base}/admin/returns?status=pending_review' -H 'Authorization: Bearer {admin}'; echo
curl -s -X POST {base}/admin/returns/$RETURN_ID/approve -H 'Authorization: Bearer {admin}'; echo

# 5. The lead's delivery record: the terms it was sold under, and its return.
curl -s {base}/admin/leads/$LEAD_ID -H 'Authorization: Bearer {admin}'; echo

# 6. Ping and post in one call (direct post).
curl -s {base}/v1/leads -H 'Authorization: Bearer {seller_key}' -H 'Content-Type: application/json' \
  -d '{{"campaign": "auto-insurance", "lead": {{"postal_code": "94107", "state": "CA", "age": 41, "homeowner": false,
       "first_name": "Alan", "last_name": "Turing", "phone": "212-867-5309", "email": "alan@example.com"}}}}'; echo

# 7. Return-aware ranking: home-insurance orders bids by bid × (1 − return rate). Its audit trail shows each
#    bid's return_rate and expected_value: r = (A + 1) / (D + 20) over its last 30 days of leads from this
#    seller, so the buyer whose return was approved in step 4 now counts a higher rate than the others.
HOME_ID=$(curl -s {base}/v1/ping -H 'Authorization: Bearer {seller_key}' -H 'Content-Type: application/json' \
  -d '{{"campaign": "home-insurance", "lead": {{"postal_code": "94107", "state": "CA", "age": 52, "homeowner": true}}}}' \
  | tee /dev/stderr | grep -o '"p_[0-9a-f]*"' | tr -d '"'); echo
curl -s {base}/admin/pings/$HOME_ID -H 'Authorization: Bearer {admin}'; echo

# 8. Metrics: every buyer's answers, and the win/loss notices sent to sunrise-insurance (its notice_url).
curl -s {base}/metrics | grep -E 'gavel_buyer_responses_total|gavel_notices_total'

Press Ctrl-C to stop."#,
        buyers = config.buyers.len(),
        buyer_id = config.buyers.first().map_or("BUYER", |b| b.id.as_str()),
        buyer_key = config.buyers.first().map_or("BUYER_KEY", |b| b.api_key.expose()),
        seller_id = config.sellers.first().map_or("SELLER", |s| s.id.as_str()),
        buyer_keys = config.buyers.iter().map(|b| b.api_key.expose()).collect::<Vec<_>>().join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ranking;

    /// The demo shows both features: a buyer whose notices its own simulated endpoint takes (the simulated
    /// buyers are started on the ping and post addresses), and a campaign ranked by expected value.
    #[test]
    fn the_demo_has_a_notice_url_served_by_a_simulated_buyer_and_a_campaign_ranked_by_expected_value() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_CONFIG);
        let config = config::load_file(&path).unwrap_or_else(|e| panic!("{DEMO_CONFIG}:\n{e}"));
        let noticed: Vec<_> = config.buyers.iter().filter(|b| b.notice_url.is_some()).collect();
        assert_eq!(noticed.len(), 1);
        let buyer = noticed[0];
        let served = buyer.ping_url.as_ref().unwrap_or(&buyer.post_url).authority();
        assert_eq!(buyer.notice_url.as_ref().and_then(|url| url.authority()), served);
        assert_eq!(buyer.notice_url.as_ref().map(|url| url.path()), Some("/notice"));
        let ranked: Vec<_> = config.campaigns.iter().filter(|c| c.ranking == Ranking::ExpectedValue).collect();
        assert_eq!(ranked.len(), 1);
        assert!(config.buyers_of(&ranked[0].id).count() >= 2, "a ranking needs bidders");
        let text = instructions("127.0.0.1:8080".parse().unwrap(), &config);
        assert!(text.contains(&ranked[0].id) && text.contains("gavel_notices_total"));
    }
}
