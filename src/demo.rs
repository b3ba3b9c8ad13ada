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
#    lead). A buyer's first return is over its 10% rate cap, so it waits for the operator's review.
for KEY in {buyer_keys}; do
  curl -s {base}/v1/returns -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{{"lead_id": "'$LEAD_ID'", "reason": "wrong_number", "note": "number disconnected"}}'; echo
done
curl -s '{base}/admin/returns?status=pending_review' -H 'Authorization: Bearer {admin}'; echo

# 5. The lead's delivery record: the terms it was sold under, and its return.
curl -s {base}/admin/leads/$LEAD_ID -H 'Authorization: Bearer {admin}'; echo

# 6. Ping and post in one call (direct post).
curl -s {base}/v1/leads -H 'Authorization: Bearer {seller_key}' -H 'Content-Type: application/json' \
  -d '{{"campaign": "auto-insurance", "lead": {{"postal_code": "94107", "state": "CA", "age": 41, "homeowner": false,
       "first_name": "Alan", "last_name": "Turing", "phone": "212-867-5309", "email": "alan@example.com"}}}}'; echo

# 7. Metrics.
curl -s {base}/metrics | grep gavel_buyer_responses_total

Press Ctrl-C to stop."#,
        buyers = config.buyers.len(),
        buyer_id = config.buyers.first().map_or("BUYER", |b| b.id.as_str()),
        buyer_key = config.buyers.first().map_or("BUYER_KEY", |b| b.api_key.expose()),
        seller_id = config.sellers.first().map_or("SELLER", |s| s.id.as_str()),
        buyer_keys = config.buyers.iter().map(|b| b.api_key.expose()).collect::<Vec<_>>().join(" "),
    )
}
