//! The gate chain over 100 buyers for one lead: what the engine spends deciding whom to ping, to be set
//! against one loopback round trip (~20 µs). Every buyer has the terms a real one does: states, a long
//! postal-code list, a schedule, rules, required fields, caps, budgets and a concurrency limit.

use std::fmt::Write;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use gavel::buyers::BuyerStates;
use gavel::dedupe::contacts_of;
use gavel::domain::lead::Lead;
use gavel::domain::money::Money;
use gavel::gates::{self, GateInput};
use gavel::ledger::{Deposit, Ledger};
use gavel::time::Moment;
use tokio::time::Instant;

const BUYERS: usize = 100;

/// A config with `BUYERS` buyers of campaign `auto`, each covering 1,000 ZIP codes and ten 3-digit prefixes.
fn config_text() -> String {
    let mut text = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nadmin_token = \"admin\"\n\n\
         [[sellers]]\nid = \"acme\"\napi_key = \"sk\"\n\n\
         [[campaigns]]\nid = \"auto\"\nping_fields = [\"postal_code\", \"state\", \"age\"]\nfloor = \"1.00\"\n",
    );
    for b in 0..BUYERS {
        let zips: Vec<String> = (0..1000).map(|z| format!("\"{:05}\"", 10_000 + b * 10 + z * 37 % 89_000)).collect();
        let prefixes: Vec<String> = (0..10).map(|p| format!("\"{}\"", 900 + p)).collect();
        let _ = write!(
            text,
            "\n[[buyers]]\nid = \"b{b}\"\napi_key = \"bk{b}\"\ncampaigns = [\"auto\"]\n\
             ping_url = \"http://127.0.0.1:9/ping\"\npost_url = \"http://127.0.0.1:9/post\"\n\
             [buyers.filters]\nstates = [\"CA\", \"NV\", \"OR\", \"WA\", \"AZ\"]\n\
             postal_codes = [{zips}, {prefixes}]\nexclude_postal_codes = [\"94130\"]\n\
             schedule = {{ timezone = \"America/Los_Angeles\", days = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"], open = \"00:01\", close = \"00:00\" }}\n\
             rules = [{{ field = \"age\", op = \"gte\", value = 21 }}, {{ field = \"homeowner\", op = \"eq\", value = true }}]\n\
             required_fields = [\"age\"]\n\
             [buyers.caps]\nhourly = 1000\ndaily = 10000\nweekly = 50000\nmonthly = 200000\n\
             daily_budget = \"100000.00\"\nmonthly_budget = \"1000000.00\"\nconcurrent_pings = 64\n",
            zips = zips.join(", "),
            prefixes = prefixes.join(", "),
        );
    }
    text
}

fn gate_chain(c: &mut Criterion) {
    let config = Arc::new(gavel::config::parse(&config_text()).expect("bench config is valid"));
    let roster = BuyerStates::default().roster(Arc::clone(&config));
    let ledger = Ledger::in_memory();
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    for buyer in &config.buyers {
        let deposit = Deposit {
            deposit_id: format!("d_{}", buyer.id),
            buyer: buyer.id.clone(),
            amount: Money::from_cents(1_000_000),
            reference: None,
            at: Utc::now(),
            idempotency_key: None,
        };
        runtime.block_on(ledger.record_deposit(deposit)).expect("in-memory books record");
    }
    let campaign = config.campaign("auto").expect("campaign").clone();

    let leads = [
        (
            "passes every gate",
            serde_json::json!({"postal_code": "90312", "state": "CA", "age": 34, "homeowner": true,
            "phone_sha256": "a".repeat(64)}),
        ),
        ("excluded at the state gate", serde_json::json!({"postal_code": "10001", "state": "NY", "age": 34})),
    ];
    for (name, lead_json) in leads {
        let lead = Lead::parse(lead_json.as_object().expect("object"), Utc::now()).expect("valid lead");
        c.bench_function(&format!("gates/{BUYERS} buyers, lead {name}"), |b| {
            b.iter(|| {
                let contacts = contacts_of(&lead);
                let (now, instant) = (Moment::new(Utc::now()), Instant::now());
                let mut eligible = 0;
                for (index, buyer) in config.buyers_of("auto") {
                    let input = GateInput {
                        buyer,
                        state: &roster.states[index],
                        campaign: &campaign,
                        lead: &lead,
                        buyer_time: Some(Duration::from_millis(180)),
                        now: &now,
                        instant,
                        draw: 0.5,
                        contacts: &contacts,
                        ledger: &ledger,
                    };
                    eligible += usize::from(gates::check(&input).is_ok());
                }
                black_box(eligible)
            })
        });
    }
}

criterion_group!(benches, gate_chain);
criterion_main!(benches);
