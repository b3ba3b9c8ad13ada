//! Ranking and clearing: which bidders are offered a lead, in which order, and at what price.
//!
//! One ranking step serves every `distribution`: bids below the floor are dropped, the rest are put in order
//! (highest first; ties by priority, then earliest answer), and the strategy only decides who goes first (or,
//! for a waterfall, orders by priority). The order is by the bid, or with `ranking = "expected_value"` by the
//! bid's expected value (bid × (1 − the buyer's return rate), see
//! [`expected_value`](crate::domain::expected_value)). Prices are set here and
//! nowhere else.

use std::cmp::Ordering;
use std::time::Duration;

use crate::config::{AuctionKind, Distribution, Ranking};
use crate::domain::expected_value::{least_bid_beating, ExpectedValue, ReturnRate};
use crate::domain::money::Money;

/// One buyer's valid bid in one auction.
#[derive(Debug, Clone, PartialEq)]
pub struct Bid {
    /// Index of the buyer in the config snapshot the auction runs on.
    pub buyer: usize,
    pub amount: Money,
    pub priority: i64,
    pub weight: u32,
    /// Time from the start of the auction to the answer (zero for fixed-price buyers).
    pub answered_after: Duration,
    /// The buyer's own id for the bid, echoed on the post.
    pub bid_id: Option<String>,
    /// The buyer's return rate with the seller; read only when the campaign ranks by expected value.
    pub return_rate: ReturnRate,
}

impl Bid {
    /// What the seller can expect to keep of this bid once returns come back.
    pub fn expected_value(&self) -> ExpectedValue {
        ExpectedValue::of(self.amount, self.return_rate)
    }
}

/// A bid in the order the lead will be offered, with the price its buyer pays if it takes the lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub bid: Bid,
    pub price: Money,
}

/// The random or rotating choices a strategy needs, supplied by the caller so ranking stays pure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Draw {
    /// A counter that advances once per auction of the campaign (round robin).
    pub rotation: u64,
    /// A uniformly random number (weighted): reduced modulo the total weight.
    pub random: u64,
}

/// Orders the bids for offering and prices each one. Bids below `floor` are dropped: they never win.
pub fn rank(
    bids: Vec<Bid>,
    distribution: Distribution,
    ranking: Ranking,
    auction: AuctionKind,
    floor: Money,
    draw: Draw,
) -> Vec<Offer> {
    let bids: Vec<Bid> = bids.into_iter().filter(|b| b.amount >= floor).collect();
    // Each ranking gets its own copy of the ordering code, so the comparison is inlined into the sort.
    match ranking {
        Ranking::Bid => {
            let bids = arrange(bids, distribution, draw, price_order);
            let amounts: Vec<Money> = bids.iter().map(|b| b.amount).collect();
            bids.into_iter()
                .enumerate()
                .map(|(i, bid)| {
                    let others = amounts.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &a)| a);
                    let price = clearing_price(auction, floor, bid.amount, others);
                    Offer { bid, price }
                })
                .collect()
        }
        Ranking::ExpectedValue => {
            let bids = arrange(bids, distribution, draw, value_order);
            let values: Vec<ExpectedValue> = bids.iter().map(Bid::expected_value).collect();
            bids.into_iter()
                .enumerate()
                .map(|(i, bid)| {
                    let others = values.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &v)| v);
                    let price = weighted_clearing_price(auction, floor, &bid, others);
                    Offer { bid, price }
                })
                .collect()
        }
    }
}

/// Puts bids (all at or above the floor) in offering order: by `order`, then the distribution's choice of
/// who goes first.
fn arrange(
    mut bids: Vec<Bid>,
    distribution: Distribution,
    draw: Draw,
    order: impl Fn(&Bid, &Bid) -> Ordering + Copy,
) -> Vec<Bid> {
    bids.sort_by(order);
    match distribution {
        Distribution::Auction => {}
        Distribution::Waterfall => bids.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| order(a, b))),
        Distribution::RoundRobin => {
            if !bids.is_empty() {
                // Rotate over a price-independent order (by buyer), so every bidder gets its turn first.
                let mut by_buyer: Vec<usize> = bids.iter().map(|b| b.buyer).collect();
                by_buyer.sort_unstable();
                let first = by_buyer[(draw.rotation % by_buyer.len() as u64) as usize];
                move_to_front(&mut bids, |b| b.buyer == first);
            }
        }
        Distribution::Weighted => {
            let total: u64 = bids.iter().map(|b| u64::from(b.weight)).sum();
            if total > 0 {
                let mut ticket = draw.random % total;
                let first = bids.iter().position(|b| {
                    let hit = ticket < u64::from(b.weight);
                    ticket = ticket.saturating_sub(u64::from(b.weight));
                    hit
                });
                if let Some(i) = first {
                    let chosen = bids.remove(i);
                    bids.insert(0, chosen);
                }
            }
        }
    }
    bids
}

/// Highest amount first; ties by lower priority, then earlier answer, then buyer order.
fn price_order(a: &Bid, b: &Bid) -> Ordering {
    b.amount.cmp(&a.amount).then_with(|| tie_break(a, b))
}

/// Highest exact expected value first; ties as [`price_order`]'s.
fn value_order(a: &Bid, b: &Bid) -> Ordering {
    b.expected_value().cmp(&a.expected_value()).then_with(|| tie_break(a, b))
}

fn tie_break(a: &Bid, b: &Bid) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then_with(|| a.answered_after.cmp(&b.answered_after))
        .then_with(|| a.buyer.cmp(&b.buyer))
}

fn move_to_front(bids: &mut [Bid], pick: impl Fn(&Bid) -> bool) {
    if let Some(i) = bids.iter().position(pick) {
        bids[..=i].rotate_right(1);
    }
}

/// The price a bidder pays.
///
/// First price: its bid. Second price: the highest *other* bid at or below its own (or the floor, if higher,
/// or if there is none), plus one cent, never more than its own bid. Only bids at or below its own count, so
/// a bidder offered the lead after a higher bidder rejected it pays against the bids beneath it.
pub fn clearing_price(
    auction: AuctionKind,
    floor: Money,
    bid: Money,
    other_bids: impl IntoIterator<Item = Money>,
) -> Money {
    match auction {
        AuctionKind::FirstPrice => bid,
        AuctionKind::SecondPrice => {
            let runner_up = other_bids.into_iter().filter(|&other| other <= bid).max().unwrap_or(floor);
            (runner_up.max(floor) + Money::CENT).min(bid)
        }
    }
}

/// The price a bidder pays when bids are ranked by expected value.
///
/// First price: its bid. Second price (quality-weighted): the least bid whose expected value still beats the
/// next offer's — the highest *other* expected value at or below its own — which is (next expected value) /
/// (1 − its own rate), rounded down to the cent, plus one cent; at least the floor plus one cent, never more
/// than its bid. A lone bid pays the floor plus one cent, never more than its bid. As with [`clearing_price`],
/// only values at or below its own count, so a bidder reached down the cascade pays against those beneath it.
pub fn weighted_clearing_price(
    auction: AuctionKind,
    floor: Money,
    bid: &Bid,
    other_values: impl IntoIterator<Item = ExpectedValue>,
) -> Money {
    match auction {
        AuctionKind::FirstPrice => bid.amount,
        AuctionKind::SecondPrice => {
            let own = bid.expected_value();
            let next = other_values.into_iter().filter(|other| *other <= own).max();
            let least =
                (floor + Money::CENT).max(next.map_or(Money::ZERO, |next| least_bid_beating(next, bid.return_rate)));
            least.min(bid.amount)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        Money::parse_text(text).unwrap()
    }

    /// (buyer, amount, priority, weight, answered after ms)
    type Row<'a> = (usize, &'a str, i64, u32, u64);

    fn bids(rows: &[Row]) -> Vec<Bid> {
        rows.iter()
            .map(|&(buyer, amount, priority, weight, ms)| Bid {
                buyer,
                amount: m(amount),
                priority,
                weight,
                answered_after: Duration::from_millis(ms),
                bid_id: None,
                return_rate: ReturnRate::NO_HISTORY,
            })
            .collect()
    }

    fn order(offers: &[Offer]) -> Vec<usize> {
        offers.iter().map(|o| o.bid.buyer).collect()
    }

    #[test]
    fn auction_orders_by_price_then_priority_then_earliest_answer() {
        let cases: &[(&str, &[Row], &[usize])] = &[
            ("highest bid wins", &[(0, "5.00", 0, 1, 1), (1, "9.00", 0, 1, 2), (2, "7.00", 0, 1, 3)], &[1, 2, 0]),
            ("tie: lower priority first", &[(0, "9.00", 2, 1, 1), (1, "9.00", 1, 1, 2)], &[1, 0]),
            ("tie: earlier answer first", &[(0, "9.00", 0, 1, 30), (1, "9.00", 0, 1, 10)], &[1, 0]),
            ("below floor never wins", &[(0, "0.99", 0, 1, 1), (1, "1.00", 0, 1, 2)], &[1]),
        ];
        for (name, rows, expected) in cases {
            let offers = rank(
                bids(rows),
                Distribution::Auction,
                Ranking::Bid,
                AuctionKind::FirstPrice,
                m("1.00"),
                Draw::default(),
            );
            assert_eq!(order(&offers), *expected, "{name}");
        }
    }

    #[test]
    fn waterfall_orders_by_priority_whatever_the_price() {
        let rows = [(0, "9.00", 2, 1, 1), (1, "2.00", 0, 1, 2), (2, "5.00", 1, 1, 3), (3, "6.00", 1, 1, 4)];
        let offers = rank(
            bids(&rows),
            Distribution::Waterfall,
            Ranking::Bid,
            AuctionKind::FirstPrice,
            m("1.00"),
            Draw::default(),
        );
        assert_eq!(order(&offers), [1, 3, 2, 0]);
    }

    #[test]
    fn round_robin_rotates_who_goes_first_and_the_rest_follow_by_price() {
        let rows = [(4, "3.00", 0, 1, 1), (7, "9.00", 0, 1, 2), (9, "5.00", 0, 1, 3)];
        let firsts: Vec<Vec<usize>> = (0..4)
            .map(|rotation| {
                let draw = Draw { rotation, random: 0 };
                order(&rank(
                    bids(&rows),
                    Distribution::RoundRobin,
                    Ranking::Bid,
                    AuctionKind::FirstPrice,
                    m("1.00"),
                    draw,
                ))
            })
            .collect();
        assert_eq!(firsts, [vec![4, 7, 9], vec![7, 9, 4], vec![9, 7, 4], vec![4, 7, 9]]);
    }

    #[test]
    fn weighted_draws_the_first_in_proportion_to_weight() {
        let rows = [(0, "3.00", 0, 1, 1), (1, "9.00", 0, 3, 2), (2, "5.00", 0, 0, 3)];
        let mut first_counts = [0; 3];
        for random in 0..400 {
            let draw = Draw { rotation: 0, random };
            let offers =
                rank(bids(&rows), Distribution::Weighted, Ranking::Bid, AuctionKind::FirstPrice, m("1.00"), draw);
            first_counts[offers[0].bid.buyer] += 1;
            // After the first, the others follow by price.
            let rest: Vec<usize> = order(&offers[1..]);
            let mut by_price = rest.clone();
            by_price.sort_by_key(|&b| std::cmp::Reverse(rows[b].1));
            assert_eq!(rest, by_price);
        }
        assert_eq!(first_counts, [100, 300, 0], "weights 1:3:0 over every ticket");
    }

    #[test]
    fn second_price_pays_the_runner_up_plus_a_cent_capped_at_the_bid() {
        let cases = [
            // (bid, others, floor, price)
            ("10.00", vec!["7.00", "3.00"], "1.00", "7.01"),
            ("10.00", vec![], "1.00", "1.01"),         // lone bid pays floor + 0.01
            ("10.00", vec!["10.00"], "1.00", "10.00"), // tie: capped at own bid
            ("1.00", vec![], "1.00", "1.00"),          // floor + 0.01 is above the bid
            ("10.00", vec!["0.50"], "1.00", "1.01"),   // runner-up below the floor
            ("5.00", vec!["9.00", "4.00"], "1.00", "4.01"), // a higher bid (already tried) does not count
        ];
        for (bid, others, floor, price) in cases {
            let got = clearing_price(AuctionKind::SecondPrice, m(floor), m(bid), others.iter().map(|o| m(o)));
            assert_eq!(got, m(price), "bid {bid} others {others:?} floor {floor}");
            assert_eq!(clearing_price(AuctionKind::FirstPrice, m(floor), m(bid), others.iter().map(|o| m(o))), m(bid));
        }
    }

    #[test]
    fn rank_prices_each_offer() {
        let rows = [(0, "10.00", 0, 1, 1), (1, "8.00", 0, 1, 2), (2, "3.00", 0, 1, 3)];
        let offers = rank(
            bids(&rows),
            Distribution::Auction,
            Ranking::Bid,
            AuctionKind::SecondPrice,
            m("2.00"),
            Draw::default(),
        );
        let prices: Vec<String> = offers.iter().map(|o| o.price.to_string()).collect();
        assert_eq!(prices, ["8.01", "3.01", "2.01"]);
    }

    /// (buyer, amount, delivered, returned, priority)
    type ValueRow<'a> = (usize, &'a str, u64, u64, i64);

    fn valued_bids(rows: &[ValueRow]) -> Vec<Bid> {
        rows.iter()
            .map(|&(buyer, amount, delivered, returned, priority)| Bid {
                buyer,
                amount: m(amount),
                priority,
                weight: 1,
                answered_after: Duration::from_millis(buyer as u64),
                bid_id: None,
                return_rate: ReturnRate::new(delivered, returned),
            })
            .collect()
    }

    #[test]
    fn expected_value_orders_by_what_the_seller_keeps_and_prices_by_quality() {
        // (name, floor, bids, order, first-price prices, second-price prices)
        type Case<'a> = (&'a str, &'a str, &'a [ValueRow<'a>], &'a [usize], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (
                // Everyone at r = 5%: the order and second price are those of ranking by bid.
                "no history",
                "1.00",
                &[(0, "8.00", 0, 0, 0), (1, "10.00", 0, 0, 0)],
                &[1, 0],
                &["10.00", "8.00"],
                &["8.01", "1.01"],
            ),
            (
                // 10.00 at r = 6/30 keeps 8.00; 9.00 at r = 5% keeps 8.55 and wins. It pays 8.00 / 0.95 =
                // 8.421… → 8.42 + 0.01; the 10.00 bidder, offered the lead only down the cascade, has nothing
                // beneath it and pays the floor + 0.01.
                "a high bidder with returns loses to a lower one without",
                "1.00",
                &[(0, "10.00", 10, 5, 0), (1, "9.00", 0, 0, 0)],
                &[1, 0],
                &["9.00", "10.00"],
                &["8.43", "1.01"],
            ),
            (
                // 10.00 at r = 4/28 keeps 8.5714…; 9.03 at 5% keeps 8.5785: both show as 8.57, the exact values
                // decide. 8.5714… / 0.95 = 9.0225… → 9.03: the whole bid.
                "rounding: exact values decide, the price is capped at the bid",
                "1.00",
                &[(0, "10.00", 8, 3, 0), (1, "9.03", 0, 0, 0)],
                &[1, 0],
                &["9.03", "10.00"],
                &["9.03", "1.01"],
            ),
            (
                // 9.02 at 5% keeps 8.569 < 8.5714…: the 10.00 bidder wins; 8.569 / (6/7) = 9.997… → 10.00.
                "rounding: a cent less and the other wins",
                "1.00",
                &[(0, "10.00", 8, 3, 0), (1, "9.02", 0, 0, 0)],
                &[0, 1],
                &["10.00", "9.02"],
                &["10.00", "1.01"],
            ),
            (
                // 8.00 at 5% keeps 7.60: the 10.00 bidder at r = 1/7 pays 7.60 × 7/6 = 8.866… → 8.87.
                "the weighted price divides by the winner's own rate",
                "1.00",
                &[(0, "10.00", 8, 3, 0), (1, "8.00", 0, 0, 0)],
                &[0, 1],
                &["10.00", "8.00"],
                &["8.87", "1.01"],
            ),
            (
                // The floor applies to the bid: 6.00 at r = 0.5 keeps 3.00, under the 5.00 floor, and still
                // ranks; 4.99 does not. The winner's weighted price (3.00 / 0.95 → 3.16) is under the floor, so
                // it pays the floor + 0.01.
                "the floor applies to the bid, not to its expected value",
                "5.00",
                &[(0, "6.00", 20, 19, 0), (1, "8.00", 0, 0, 0), (2, "4.99", 0, 0, 0)],
                &[1, 0],
                &["8.00", "6.00"],
                &["5.01", "5.01"],
            ),
            (
                // 10.00 at 1/20 and 10.00 at 2/40 keep exactly 9.50 each: priority decides; the tie prices the
                // winner at its own bid, as equal bids do.
                "equal expected values go by priority",
                "1.00",
                &[(0, "10.00", 0, 0, 1), (1, "10.00", 20, 1, 0)],
                &[1, 0],
                &["10.00", "10.00"],
                &["10.00", "10.00"],
            ),
            ("a lone bid", "2.00", &[(0, "10.00", 40, 30, 0)], &[0], &["10.00"], &["2.01"]),
            (
                // README's worked example: 10.00 at r = 10/50 keeps 8.00, 9.00 at 1/20 keeps 8.55, 8.00 at 1/80
                // keeps 7.90. 9.00 wins and pays 8.00 / 0.95 = 8.421… → 8.43; down the cascade 10.00 pays
                // 7.90 / 0.8 = 9.875 → 9.88, and 8.00, with nothing beneath it, the floor + 0.01.
                "the README's worked example",
                "2.00",
                &[(0, "10.00", 30, 9, 0), (1, "9.00", 0, 0, 0), (2, "8.00", 60, 0, 0)],
                &[1, 0, 2],
                &["9.00", "10.00", "8.00"],
                &["8.43", "9.88", "2.01"],
            ),
        ];
        for (name, floor, rows, expected_order, first_prices, second_prices) in cases {
            for (auction, prices) in
                [(AuctionKind::FirstPrice, first_prices), (AuctionKind::SecondPrice, second_prices)]
            {
                let offers = rank(
                    valued_bids(rows),
                    Distribution::Auction,
                    Ranking::ExpectedValue,
                    auction,
                    m(floor),
                    Draw::default(),
                );
                assert_eq!(order(&offers), *expected_order, "{name} ({auction:?})");
                let got: Vec<String> = offers.iter().map(|o| o.price.to_string()).collect();
                assert_eq!(got, *prices, "{name} ({auction:?})");
            }
        }
    }

    #[test]
    fn ranking_by_bid_ignores_return_rates() {
        let rows = [(0, "10.00", 10, 5, 0), (1, "9.00", 0, 0, 0)];
        let offers = rank(
            valued_bids(&rows),
            Distribution::Auction,
            Ranking::Bid,
            AuctionKind::SecondPrice,
            m("1.00"),
            Draw::default(),
        );
        assert_eq!(order(&offers), [0, 1]);
        assert_eq!(offers[0].price, m("9.01"));
    }
}
