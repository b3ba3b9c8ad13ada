//! Ranking and clearing (`domain::ranking`): what the engine does with the bids of one auction once the
//! fan-out is over — drop those below the floor, order the rest, put the winner first by the campaign's
//! distribution and price every offer — for 10 and 50 bidders under every distribution and both auction
//! kinds. `rank` is the function the engine calls; nothing is reimplemented here.
//!
//! `cargo bench --bench ranking -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use gavel::config::{AuctionKind, Distribution};
use gavel::domain::money::Money;
use gavel::domain::ranking::{clearing_price, rank, Bid, Draw};

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
        })
        .collect()
}

fn ranking(c: &mut Criterion) {
    let floor = Money::from_cents(100);
    let draw = Draw { rotation: 7, random: 12_345 };
    let mut group = c.benchmark_group("ranking/rank");
    for n in [10, 50] {
        let input = bids(n);
        for (name, distribution, auction) in [
            ("auction first_price", Distribution::Auction, AuctionKind::FirstPrice),
            ("auction second_price", Distribution::Auction, AuctionKind::SecondPrice),
            ("waterfall", Distribution::Waterfall, AuctionKind::FirstPrice),
            ("round_robin", Distribution::RoundRobin, AuctionKind::FirstPrice),
            ("weighted", Distribution::Weighted, AuctionKind::SecondPrice),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &input, |b, input| {
                // `rank` takes the collected bids by value, as in the engine; the copy it consumes is made
                // outside the timing, and the offers it returns are dropped outside it too.
                b.iter_batched(
                    || input.clone(),
                    |bids| rank(bids, distribution, auction, floor, draw),
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

criterion_group!(benches, ranking);
criterion_main!(benches);
