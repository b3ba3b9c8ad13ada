//! What each bid of a closed auction came to, as its buyer's win/loss notice tells it (API.md section 3): won,
//! lost, under the floor or unaffordable; the price a winner would pay; and for every other bid the least bid
//! that would have won (`min_to_win`).

use crate::config::{Distribution, Ranking};
use crate::domain::expected_value::{least_bid_beating, ReturnRate};
use crate::domain::money::Money;
use crate::domain::ranking::Offer;

/// The fate of one bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BidOutcome {
    /// Its bid is the one quoted to the seller (one of them under shared sell).
    Won,
    /// Another bid won.
    Lost,
    /// Its bid was under the floor.
    BelowFloor,
    /// Its bid could not be held: over its funds or a budget, a cap taken meanwhile, or the consumer
    /// already reserved for it by another auction.
    Unaffordable,
}

impl BidOutcome {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BidOutcome::Won => "won",
            BidOutcome::Lost => "lost",
            BidOutcome::BelowFloor => "below_floor",
            BidOutcome::Unaffordable => "unaffordable",
        }
    }
}

/// One bid as the auction received it (pinged or fixed-price: ranking does not tell them apart).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bidder {
    /// Index of the buyer in the auction's config snapshot.
    pub buyer: usize,
    pub amount: Money,
    /// Its buyer's return rate with the seller (read only under `ranking = "expected_value"`).
    pub return_rate: ReturnRate,
}

/// What one bid came to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fate {
    pub buyer: usize,
    pub outcome: BidOutcome,
    pub bid: Money,
    /// What it pays if the lead is sold to it: `Some` only when it won.
    pub price: Option<Money>,
    /// The least bid that would have won: `None` for a winner and outside `distribution = "auction"`.
    pub min_to_win: Option<Money>,
}

/// The campaign rules that decide who won and what would have won.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub distribution: Distribution,
    pub ranking: Ranking,
    pub floor: Money,
    /// How many bidders the lead is quoted to: 1, or `max_buyers` under shared sell.
    pub places: usize,
}

/// The fate of each of `bids`, given the offers the auction closed with: ranked, priced, and without the bids
/// that could not be held. A bid at or above the floor that is not among the offers could not be held.
pub fn fates(rules: &Rules, bids: &[Bidder], offers: &[Offer]) -> Vec<Fate> {
    let winners = &offers[..offers.len().min(rules.places)];
    bids.iter()
        .map(|bidder| {
            let won = winners.iter().find(|offer| offer.bid.buyer == bidder.buyer);
            let outcome = match won {
                Some(_) => BidOutcome::Won,
                None if bidder.amount < rules.floor => BidOutcome::BelowFloor,
                None if offers.iter().any(|offer| offer.bid.buyer == bidder.buyer) => BidOutcome::Lost,
                None => BidOutcome::Unaffordable,
            };
            Fate {
                buyer: bidder.buyer,
                outcome,
                bid: bidder.amount,
                price: won.map(|offer| offer.price),
                min_to_win: match won {
                    Some(_) => None,
                    None => min_to_win(rules, winners, bidder.return_rate),
                },
            }
        })
        .collect()
}

/// The smallest bid that would have won, for a bidder whose rate is `own_rate`, given the winning offers in
/// rank order. Only `distribution = "auction"` lets price alone decide; elsewhere there is none. A place
/// left free (no winner, or fewer than the places under shared sell) is won by the floor itself. Otherwise
/// the bid must beat the lowest winner: by bid, its bid plus 0.01; by expected value, (its expected value) /
/// (1 − own r) rounded down to the cent plus 0.01. Never below the floor.
pub fn min_to_win(rules: &Rules, winners: &[Offer], own_rate: ReturnRate) -> Option<Money> {
    if rules.distribution != Distribution::Auction {
        return None;
    }
    let Some(lowest) = winners.last().filter(|_| winners.len() >= rules.places) else {
        return Some(rules.floor);
    };
    let least = match rules.ranking {
        Ranking::Bid => lowest.bid.amount + Money::CENT,
        Ranking::ExpectedValue => least_bid_beating(lowest.bid.expected_value(), own_rate),
    };
    Some(least.max(rules.floor))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::AuctionKind;
    use crate::domain::ranking::{rank, Bid, Draw};

    fn m(text: &str) -> Money {
        Money::parse_text(text).unwrap()
    }

    /// (buyer, bid, delivered, returned); buyer 9 bids a fixed price (answers at once, as the fan-out records
    /// fixed-price buyers).
    type Row = (usize, &'static str, u64, u64);

    /// One auction through the real ranking: the `unaffordable` bids are dropped before ranking (over their
    /// funds) or, for `lost_hold`, after it (a cap taken meanwhile), as the engine does.
    fn auction(
        rules: Rules,
        auction: AuctionKind,
        rows: &[Row],
        unaffordable: &[usize],
        lost_hold: &[usize],
    ) -> Vec<(usize, &'static str, Option<String>, Option<String>)> {
        let bids: Vec<Bid> = rows
            .iter()
            .map(|&(buyer, amount, delivered, returned)| Bid {
                buyer,
                amount: m(amount),
                priority: 0,
                weight: 1,
                answered_after: Duration::from_millis(if buyer == 9 { 0 } else { 1 + buyer as u64 }),
                bid_id: None,
                return_rate: ReturnRate::new(delivered, returned),
            })
            .collect();
        let bidders: Vec<Bidder> =
            bids.iter().map(|b| Bidder { buyer: b.buyer, amount: b.amount, return_rate: b.return_rate }).collect();
        let payable = bids.into_iter().filter(|b| !unaffordable.contains(&b.buyer)).collect();
        let mut offers = rank(payable, rules.distribution, rules.ranking, auction, rules.floor, Draw::default());
        offers.retain(|offer| !lost_hold.contains(&offer.bid.buyer));
        fates(&rules, &bidders, &offers)
            .into_iter()
            .map(|f| (f.buyer, f.outcome.as_str(), f.price.map(|p| p.to_string()), f.min_to_win.map(|p| p.to_string())))
            .collect()
    }

    fn rules(ranking: Ranking, floor: &str, places: usize) -> Rules {
        Rules { distribution: Distribution::Auction, ranking, floor: m(floor), places }
    }

    type Expected = &'static [(usize, &'static str, Option<&'static str>, Option<&'static str>)];

    fn check(name: &str, got: Vec<(usize, &'static str, Option<String>, Option<String>)>, expected: Expected) {
        let expected: Vec<_> =
            expected.iter().map(|&(b, o, p, w)| (b, o, p.map(str::to_owned), w.map(str::to_owned))).collect();
        assert_eq!(got, expected, "{name}");
    }

    #[test]
    fn min_to_win_by_bid_is_the_lowest_winning_bid_plus_a_cent_under_either_price() {
        use AuctionKind::{FirstPrice, SecondPrice};
        // (name, rules, rows, unaffordable, lost hold, first-price fates, second-price fates)
        type Case = (&'static str, Rules, &'static [Row], &'static [usize], &'static [usize], Expected, Expected);
        let cases: &[Case] = &[
            (
                "exclusive: the winner, a loser, one under the floor, a fixed-price loser",
                rules(Ranking::Bid, "1.00", 1),
                &[(0, "10.00", 0, 0), (1, "8.00", 0, 0), (2, "0.50", 0, 0), (9, "7.50", 0, 0)],
                &[],
                &[],
                &[
                    (0, "won", Some("10.00"), None),
                    (1, "lost", None, Some("10.01")),
                    (2, "below_floor", None, Some("10.01")),
                    (9, "lost", None, Some("10.01")),
                ],
                &[
                    (0, "won", Some("8.01"), None),
                    (1, "lost", None, Some("10.01")),
                    (2, "below_floor", None, Some("10.01")),
                    (9, "lost", None, Some("10.01")),
                ],
            ),
            (
                "shared, two places: both winners, the third must beat the lower",
                rules(Ranking::Bid, "1.00", 2),
                &[(0, "10.00", 0, 0), (1, "8.00", 0, 0), (2, "5.00", 0, 0)],
                &[],
                &[],
                &[(0, "won", Some("10.00"), None), (1, "won", Some("8.00"), None), (2, "lost", None, Some("8.01"))],
                &[(0, "won", Some("8.01"), None), (1, "won", Some("5.01"), None), (2, "lost", None, Some("8.01"))],
            ),
            (
                "shared, three places and two bids above the floor: the floor would have won",
                rules(Ranking::Bid, "2.00", 3),
                &[(0, "10.00", 0, 0), (9, "7.50", 0, 0), (2, "1.99", 0, 0)],
                &[],
                &[],
                &[
                    (0, "won", Some("10.00"), None),
                    (9, "won", Some("7.50"), None),
                    (2, "below_floor", None, Some("2.00")),
                ],
                &[
                    (0, "won", Some("7.51"), None),
                    (9, "won", Some("2.01"), None),
                    (2, "below_floor", None, Some("2.00")),
                ],
            ),
            (
                "nothing above the floor: the floor would have won",
                rules(Ranking::Bid, "5.00", 1),
                &[(0, "4.99", 0, 0)],
                &[],
                &[],
                &[(0, "below_floor", None, Some("5.00"))],
                &[(0, "below_floor", None, Some("5.00"))],
            ),
            (
                "over its funds: unaffordable, and the next bid wins",
                rules(Ranking::Bid, "1.00", 1),
                &[(0, "12.00", 0, 0), (1, "10.00", 0, 0), (2, "8.00", 0, 0)],
                &[0],
                &[],
                &[
                    (0, "unaffordable", None, Some("10.01")),
                    (1, "won", Some("10.00"), None),
                    (2, "lost", None, Some("10.01")),
                ],
                &[
                    (0, "unaffordable", None, Some("10.01")),
                    (1, "won", Some("8.01"), None),
                    (2, "lost", None, Some("10.01")),
                ],
            ),
            (
                // The winner's price was set before its hold failed: the next one keeps its price.
                "a cap taken meanwhile: unaffordable after ranking",
                rules(Ranking::Bid, "1.00", 1),
                &[(0, "12.00", 0, 0), (1, "10.00", 0, 0)],
                &[],
                &[0],
                &[(0, "unaffordable", None, Some("10.01")), (1, "won", Some("10.00"), None)],
                &[(0, "unaffordable", None, Some("10.01")), (1, "won", Some("1.01"), None)],
            ),
            (
                "the only bid unaffordable: the floor would have won",
                rules(Ranking::Bid, "3.00", 1),
                &[(0, "12.00", 0, 0)],
                &[0],
                &[],
                &[(0, "unaffordable", None, Some("3.00"))],
                &[(0, "unaffordable", None, Some("3.00"))],
            ),
        ];
        for (name, rules, rows, unaffordable, lost_hold, first, second) in cases {
            check(name, auction(*rules, FirstPrice, rows, unaffordable, lost_hold), first);
            check(name, auction(*rules, SecondPrice, rows, unaffordable, lost_hold), second);
        }
    }

    #[test]
    fn min_to_win_by_expected_value_divides_by_the_bidders_own_rate() {
        use AuctionKind::{FirstPrice, SecondPrice};
        let cases: &[(&str, Rules, &[Row], Expected, Expected)] = &[
            (
                // 10.00 at r = 6/30 keeps 8.00 and loses to 9.00 at 5% (8.55): to win it needs 8.55 / 0.8 =
                // 10.6875 → 10.69; the fixed-price 7.50 at 5% needs 8.55 / 0.95 = 9.00 → 9.01.
                "a high bidder with returns loses; each loser's bar is its own",
                rules(Ranking::ExpectedValue, "1.00", 1),
                &[(0, "10.00", 10, 5), (1, "9.00", 0, 0), (9, "7.50", 0, 0)],
                &[(0, "lost", None, Some("10.69")), (1, "won", Some("9.00"), None), (9, "lost", None, Some("9.01"))],
                &[(0, "lost", None, Some("10.69")), (1, "won", Some("8.43"), None), (9, "lost", None, Some("9.01"))],
            ),
            (
                // README's worked example: 9.00 at 1/20 (8.55) wins; 10.00 at 10/50 needs 8.55 / 0.8 = 10.6875
                // → 10.69, and 8.00 at 1/80 needs 8.55 / 0.9875 = 8.658… → 8.66.
                "the README's worked example",
                rules(Ranking::ExpectedValue, "2.00", 1),
                &[(0, "10.00", 30, 9), (1, "9.00", 0, 0), (2, "8.00", 60, 0)],
                &[(0, "lost", None, Some("10.69")), (1, "won", Some("9.00"), None), (2, "lost", None, Some("8.66"))],
                &[(0, "lost", None, Some("10.69")), (1, "won", Some("8.43"), None), (2, "lost", None, Some("8.66"))],
            ),
            (
                // The winner keeps 10 × 6/7 = 8.5714…; 9.02 at 5% keeps 8.569, just under it. Beating it at 5%
                // takes 8.5714… / 0.95 = 9.0225… → 9.03.
                "rounding",
                rules(Ranking::ExpectedValue, "1.00", 1),
                &[(0, "10.00", 8, 3), (1, "9.02", 0, 0)],
                &[(0, "won", Some("10.00"), None), (1, "lost", None, Some("9.03"))],
                &[(0, "won", Some("10.00"), None), (1, "lost", None, Some("9.03"))],
            ),
            (
                // 5.00 at r = 0.5 keeps 2.50; beating it at 5% takes 2.64, but the floor is 5.00.
                "never below the floor",
                rules(Ranking::ExpectedValue, "5.00", 1),
                &[(0, "5.00", 20, 19), (1, "4.00", 0, 0)],
                &[(0, "won", Some("5.00"), None), (1, "below_floor", None, Some("5.00"))],
                &[(0, "won", Some("5.00"), None), (1, "below_floor", None, Some("5.00"))],
            ),
            (
                // Two places go to the top two by expected value (9.00 → 8.55 and 8.00 → 7.60); the 10.00 at
                // r = 0.2 keeps 8.00 > 7.60 — it wins the second place. The third must beat 8.00 at 5%: 8.43.
                "shared: the top places by expected value",
                rules(Ranking::ExpectedValue, "1.00", 2),
                &[(0, "10.00", 10, 5), (1, "9.00", 0, 0), (2, "8.00", 0, 0)],
                &[(0, "won", Some("10.00"), None), (1, "won", Some("9.00"), None), (2, "lost", None, Some("8.43"))],
                &[(0, "won", Some("9.51"), None), (1, "won", Some("8.43"), None), (2, "lost", None, Some("8.43"))],
            ),
        ];
        for (name, rules, rows, first, second) in cases {
            check(name, auction(*rules, FirstPrice, rows, &[], &[]), first);
            check(name, auction(*rules, SecondPrice, rows, &[], &[]), second);
        }
    }

    #[test]
    fn outside_the_auction_distribution_price_alone_does_not_decide() {
        for distribution in [Distribution::Waterfall, Distribution::RoundRobin, Distribution::Weighted] {
            let rules = Rules { distribution, ranking: Ranking::Bid, floor: m("1.00"), places: 1 };
            let got = auction(rules, AuctionKind::FirstPrice, &[(0, "10.00", 0, 0), (1, "0.50", 0, 0)], &[], &[]);
            let winner = got.iter().find(|f| f.1 == "won").map(|f| f.0);
            assert_eq!(winner, Some(0), "{distribution:?}");
            assert!(got.iter().all(|f| f.3.is_none()), "{distribution:?}: {got:?}");
        }
    }
}
