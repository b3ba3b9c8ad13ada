//! Ranking and clearing: which bidders are offered a lead, in which order, and at what price.
//!
//! One ranking step serves every `distribution`: bids below the floor are dropped, the rest are put in price
//! order (highest first; ties by priority, then earliest answer), and the strategy only decides who goes
//! first (or, for a waterfall, orders by priority). Prices are set here and nowhere else.

use std::time::Duration;

use crate::config::{AuctionKind, Distribution};
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
pub fn rank(bids: Vec<Bid>, distribution: Distribution, auction: AuctionKind, floor: Money, draw: Draw) -> Vec<Offer> {
    let mut bids: Vec<Bid> = bids.into_iter().filter(|b| b.amount >= floor).collect();
    bids.sort_by(price_order);
    match distribution {
        Distribution::Auction => {}
        Distribution::Waterfall => bids.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| price_order(a, b))),
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

/// Highest amount first; ties by lower priority, then earlier answer, then buyer order.
fn price_order(a: &Bid, b: &Bid) -> std::cmp::Ordering {
    b.amount
        .cmp(&a.amount)
        .then_with(|| a.priority.cmp(&b.priority))
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
            let offers = rank(bids(rows), Distribution::Auction, AuctionKind::FirstPrice, m("1.00"), Draw::default());
            assert_eq!(order(&offers), *expected, "{name}");
        }
    }

    #[test]
    fn waterfall_orders_by_priority_whatever_the_price() {
        let rows = [(0, "9.00", 2, 1, 1), (1, "2.00", 0, 1, 2), (2, "5.00", 1, 1, 3), (3, "6.00", 1, 1, 4)];
        let offers = rank(bids(&rows), Distribution::Waterfall, AuctionKind::FirstPrice, m("1.00"), Draw::default());
        assert_eq!(order(&offers), [1, 3, 2, 0]);
    }

    #[test]
    fn round_robin_rotates_who_goes_first_and_the_rest_follow_by_price() {
        let rows = [(4, "3.00", 0, 1, 1), (7, "9.00", 0, 1, 2), (9, "5.00", 0, 1, 3)];
        let firsts: Vec<Vec<usize>> = (0..4)
            .map(|rotation| {
                let draw = Draw { rotation, random: 0 };
                order(&rank(bids(&rows), Distribution::RoundRobin, AuctionKind::FirstPrice, m("1.00"), draw))
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
            let offers = rank(bids(&rows), Distribution::Weighted, AuctionKind::FirstPrice, m("1.00"), draw);
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
        let offers = rank(bids(&rows), Distribution::Auction, AuctionKind::SecondPrice, m("2.00"), Draw::default());
        let prices: Vec<String> = offers.iter().map(|o| o.price.to_string()).collect();
        assert_eq!(prices, ["8.01", "3.01", "2.01"]);
    }
}
