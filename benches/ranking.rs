//! Ranking and clearing (`domain::ranking`): what the engine does with the bids of one auction once the
//! fan-out is over — drop those below the floor, order the rest, put the winner first by the campaign's
//! distribution and price every offer — for 10 and 50 bidders under every distribution and both auction
//! kinds, ranked by bid and by expected value (`ranking = "expected_value"`, each bidder with its own return
//! history). `rank` is the function the engine calls; nothing is reimplemented here. Beside it, the other
//! per-auction cost of expected-value ranking: reading 10 bidders' return rates from the ledger's running
//! aggregate.
//!
//! `cargo bench --bench ranking -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use chrono::{Duration as Days, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use gavel::config::{AuctionKind, Distribution, Ranking};
use gavel::domain::expected_value::ReturnRate;
use gavel::domain::money::Money;
use gavel::domain::ranking::{clearing_price, rank, Bid, Draw};
use gavel::ledger::return_rates::ReturnRates;

/// Round prices, as buyers bid them: three tied pairs (broken by priority, then answer time) and one below
/// the floor in every ten.
const CENTS: [i64; 10] = [1250, 900, 1575, 80, 1100, 900, 1250, 1400, 725, 1575];

/// `n` bids: `CENTS` over and over, each further ten 5 cents higher.
fn bids(n: usize) -> Vec<Bid> {
    (0..n)
        .map(|i| Bid {
            buyer: i,
            amount: Money::from_cents(CENTS[i % 10] + (i / 10) as i64 * 5),
            priority: (i % 3) as i64,
            weight: 1 + (i % 4) as u32,
            answered_after: Duration::from_micros(100 + (i as u64 * 37) % 900),
            bid_id: Some(format!("b{i}")),
            // Histories from none to a third returned; ranking by bid never reads them.
            return_rate: ReturnRate::new((i as u64 * 7) % 60, (i as u64 * 3) % 20),
        })
        .collect()
}

fn ranking(c: &mut Criterion) {
    let floor = Money::from_cents(100);
    let draw = Draw { rotation: 7, random: 12_345 };
    let mut group = c.benchmark_group("ranking/rank");
    for n in [10, 50] {
        let input = bids(n);
        for (name, distribution, ranking, auction) in [
            ("auction first_price", Distribution::Auction, Ranking::Bid, AuctionKind::FirstPrice),
            ("auction second_price", Distribution::Auction, Ranking::Bid, AuctionKind::SecondPrice),
            ("waterfall", Distribution::Waterfall, Ranking::Bid, AuctionKind::FirstPrice),
            ("round_robin", Distribution::RoundRobin, Ranking::Bid, AuctionKind::FirstPrice),
            ("weighted", Distribution::Weighted, Ranking::Bid, AuctionKind::SecondPrice),
            ("expected_value first_price", Distribution::Auction, Ranking::ExpectedValue, AuctionKind::FirstPrice),
            ("expected_value second_price", Distribution::Auction, Ranking::ExpectedValue, AuctionKind::SecondPrice),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &input, |b, input| {
                // `rank` takes the collected bids by value, as in the engine; the copy it consumes is made
                // outside the timing, and the offers it returns are dropped outside it too.
                b.iter_batched(
                    || input.clone(),
                    |bids| rank(bids, distribution, ranking, auction, floor, draw),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();

    // One price on its own: `rank` sets one per offer, so with n bidders it runs n times over n − 1 bids.
    let others: Vec<Money> = bids(50).iter().skip(1).map(|b| b.amount).collect();
    c.bench_function("ranking/clearing_price second_price, 49 other bids", |b| {
        b.iter(|| {
            black_box(clearing_price(AuctionKind::SecondPrice, floor, Money::from_cents(1200), others.iter().copied()))
        })
    });
}

/// Reading 10 bidders' rates from one seller, each buyer with 30 days of history at 4 leads an hour (720 hours
/// kept, one return in ten), as an auction of a campaign ranked by expected value does once per auction.
fn return_rates(c: &mut Criterion) {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("valid date");
    let buyers: Vec<String> = (0..10).map(|i| format!("buyer-{i}")).collect();
    let mut rates = ReturnRates::default();
    for hour in 0..30 * 24 {
        for (i, buyer) in buyers.iter().enumerate() {
            for lead in 0..4 {
                let at = start + Days::hours(hour) + Days::minutes(lead * 15);
                rates.delivered("acme", buyer, at);
                if (hour + i as i64 + lead) % 10 == 0 {
                    rates.returned("acme", buyer, at);
                }
            }
        }
    }
    let now = start + Days::days(30);
    c.bench_function("ranking/return_rates 10 bidders, 30 days of history", |b| {
        b.iter(|| {
            let seller = rates.seller(black_box("acme"));
            buyers.iter().map(|buyer| seller.rate(buyer, 30, now)).fold(0, |n, rate| n + rate.returned())
        })
    });
}

criterion_group!(benches, ranking, return_rates);
criterion_main!(benches);
