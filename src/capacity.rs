//! Capacity: how much more a buyer may take. Per-buyer counters of sales and spend for the hourly, daily,
//! weekly and monthly periods of the buyer's timezone, concurrency slots for pings in flight, and **holds**.
//!
//! A winning bid holds one unit of every cap, its price against budgets and balance, and the lead's phone and
//! email (the duplicate check's reservation, see [`crate::dedupe`]) until it is sold, rejected or expires, so
//! concurrent auctions never over-deliver nor sell one consumer twice to one buyer: every check counts what is
//! sold *and* what is held, and taking a hold is one check-and-reserve under the buyer's lock. A [`Hold`] is a
//! guard: dropping it releases what it held, committing it turns it into a sale. A ramp only sets the daily
//! cap's limit for the day; it is not a second counter.
//!
//! Lock order: a buyer's capacity lock may be held while the ledger's balance is read (see
//! [`BuyerCapacity::try_hold`]), never the other way round.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use crate::config::Buyer;
use crate::dedupe::{Contact, ContactBook};
use crate::domain::money::Money;

/// A period that caps and budgets count over, in the buyer's timezone. Weeks start on Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::Hourly, Period::Daily, Period::Weekly, Period::Monthly];

    /// The contract's name (`cap:daily`, `caps.daily`).
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }

    /// A number that names the period a local time falls in; equal for two times of the same period.
    /// (In the hour that repeats when clocks fall back, both passes count as one hour: the safe side.)
    fn key(self, local: NaiveDateTime) -> i64 {
        let day = i64::from(local.date().num_days_from_ce());
        match self {
            Period::Hourly => day * 24 + i64::from(local.hour()),
            Period::Daily => day,
            Period::Weekly => day - i64::from(local.weekday().num_days_from_monday()),
            Period::Monthly => i64::from(local.year()) * 12 + i64::from(local.month0()),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a buyer has no room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// The buyer bought one of the lead's contacts within its `dedupe_days`, or holds a bid on it.
    Duplicate,
    Cap(Period),
    Budget(Period),
    Concurrency,
    Balance,
}

/// The timezone a buyer's caps count in: its schedule's, else UTC.
pub fn timezone(buyer: &Buyer) -> Tz {
    buyer.filters.schedule.as_ref().map_or(Tz::UTC, |s| s.timezone)
}

/// The buyer's local date and time at an instant.
pub fn local(tz: Tz, at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&tz).naive_local()
}

/// The daily limit a ramp allows on a local date: `daily_start + daily_step × days since start`, 0 before the
/// start, never above `caps.daily`. `None` when the buyer has neither a ramp nor a daily cap.
pub fn daily_limit(buyer: &Buyer, date: NaiveDate) -> Option<u32> {
    let Some(ramp) = &buyer.ramp else { return buyer.caps.daily };
    let ramped = match u32::try_from((date - ramp.start).num_days()) {
        Err(_) => 0,
        Ok(days) => ramp.daily_step.saturating_mul(days).saturating_add(ramp.daily_start),
    };
    Some(buyer.caps.daily.map_or(ramped, |cap| cap.min(ramped)))
}

/// Each period's key at `at` (in the buyer's timezone) with its cap limit and budget, hourly to monthly: what
/// a hold checks, for stores that check it elsewhere (Redis in cluster mode).
pub fn period_terms(buyer: &Buyer, at: DateTime<Utc>) -> [(i64, Option<u32>, Option<Money>); 4] {
    let local = local(timezone(buyer), at);
    Period::ALL.map(|period| (period.key(local), cap_limit(buyer, period, local.date()), budget_limit(buyer, period)))
}

fn cap_limit(buyer: &Buyer, period: Period, date: NaiveDate) -> Option<u32> {
    match period {
        Period::Hourly => buyer.caps.hourly,
        Period::Daily => daily_limit(buyer, date),
        Period::Weekly => buyer.caps.weekly,
        Period::Monthly => buyer.caps.monthly,
    }
}

fn budget_limit(buyer: &Buyer, period: Period) -> Option<Money> {
    match period {
        Period::Daily => buyer.caps.daily_budget,
        Period::Monthly => buyer.caps.monthly_budget,
        Period::Hourly | Period::Weekly => None,
    }
}

/// Sales and spend in one period.
#[derive(Debug, Clone, Copy, Default)]
struct PeriodCount {
    key: i64,
    sales: u32,
    spent: Money,
}

/// One buyer's counters; everything behind one lock so a check and a reservation are one step.
#[derive(Debug, Default)]
struct Tally {
    periods: [PeriodCount; 4],
    held_units: u32,
    held_money: Money,
    contacts: ContactBook,
}

impl Tally {
    /// The sales and spend of the period `key` names (zero once the period has rolled over).
    fn count(&self, period: Period, key: i64) -> (u32, Money) {
        let count = self.periods[period.index()];
        if count.key == key {
            (count.sales, count.spent)
        } else {
            (0, Money::ZERO)
        }
    }

    /// The first cap or budget that one more sale at `amount` would break.
    fn caps_shortfall(&self, buyer: &Buyer, local: NaiveDateTime, amount: Money) -> Option<Shortfall> {
        for period in Period::ALL {
            let (sales, spent) = self.count(period, period.key(local));
            if cap_limit(buyer, period, local.date()).is_some_and(|limit| sales + self.held_units >= limit) {
                return Some(Shortfall::Cap(period));
            }
            if budget_limit(buyer, period).is_some_and(|budget| spent + self.held_money + amount > budget) {
                return Some(Shortfall::Budget(period));
            }
        }
        None
    }

    fn add_sale(&mut self, local: NaiveDateTime, amount: Money) {
        for period in Period::ALL {
            let key = period.key(local);
            let count = &mut self.periods[period.index()];
            if count.key != key {
                *count = PeriodCount { key, ..PeriodCount::default() };
            }
            count.sales += 1;
            count.spent += amount;
        }
    }
}

/// What [`BuyerCapacity::room`] found: whether the lead is a duplicate for the buyer, room under caps and
/// budgets, and room in the buyer's funds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub duplicate: Result<(), Shortfall>,
    pub caps: Result<(), Shortfall>,
    pub funds: Result<(), Shortfall>,
}

impl Room {
    /// Room for all three.
    pub fn all(self) -> Result<(), Shortfall> {
        self.duplicate.and(self.caps).and(self.funds)
    }
}

/// What one more sale would take: its price, and the lead's contacts for the duplicate check.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub amount: Money,
    pub contacts: &'a [Contact],
}

/// One buyer's capacity, shared by every auction it takes part in.
#[derive(Debug, Default)]
pub struct BuyerCapacity {
    tally: Mutex<Tally>,
    pings_in_flight: AtomicU32,
}

impl BuyerCapacity {
    /// Whether the lead is a duplicate for the buyer at `now`, whether one more sale at `ask.amount` fits
    /// every cap and budget at `local` (the buyer's local time), and whether `funds` (balance plus credit,
    /// before holds) cover it once what is held is set aside. The gates read all three at once, under one
    /// lock; nothing is reserved.
    pub fn room(&self, buyer: &Buyer, now: DateTime<Utc>, local: NaiveDateTime, ask: Ask<'_>, funds: Money) -> Room {
        let tally = self.tally.lock();
        let duplicate = if tally.contacts.is_duplicate(ask.contacts, buyer.dedupe_days, now) {
            Err(Shortfall::Duplicate)
        } else {
            Ok(())
        };
        let caps = tally.caps_shortfall(buyer, local, ask.amount).map_or(Ok(()), Err);
        let funds = if funds - tally.held_money < ask.amount { Err(Shortfall::Balance) } else { Ok(()) };
        Room { duplicate, caps, funds }
    }

    /// Reserves the lead's contacts, one unit of every cap and `ask.amount` of budgets and funds, if none is a
    /// duplicate and they all have room. `funds` is read under this buyer's lock, so a sale that lowers the
    /// balance and then releases its hold can never be counted twice as available.
    pub fn try_hold(
        self: &Arc<Self>,
        buyer: &Buyer,
        now: DateTime<Utc>,
        ask: Ask<'_>,
        funds: impl FnOnce() -> Money,
    ) -> Result<Hold, Shortfall> {
        let tz = timezone(buyer);
        let mut tally = self.tally.lock();
        if tally.contacts.is_duplicate(ask.contacts, buyer.dedupe_days, now) {
            return Err(Shortfall::Duplicate);
        }
        if let Some(shortfall) = tally.caps_shortfall(buyer, local(tz, now), ask.amount) {
            return Err(shortfall);
        }
        if funds() - tally.held_money < ask.amount {
            return Err(Shortfall::Balance);
        }
        let contacts = tally.contacts.reserve(ask.contacts, &[], buyer.dedupe_days, now).unwrap_or_default();
        tally.held_units += 1;
        tally.held_money += ask.amount;
        Ok(Hold {
            capacity: Arc::clone(self),
            tz,
            amount: ask.amount,
            dedupe_days: buyer.dedupe_days,
            contacts,
            settled: false,
        })
    }

    /// Mirrors in this node's view a hold the coordinator took elsewhere (Redis, in cluster mode), without any
    /// check: the exact check was made there. The gates then see this node's own held bids at once, as on one
    /// node; other nodes' holds reach the view only as the sales they become.
    pub fn shadow(self: &Arc<Self>, buyer: &Buyer, ask: Ask<'_>) -> Hold {
        let mut tally = self.tally.lock();
        tally.held_units += 1;
        tally.held_money += ask.amount;
        let contacts = if buyer.dedupe_days > 0 { tally.contacts.force_reserve(ask.contacts) } else { Vec::new() };
        Hold {
            capacity: Arc::clone(self),
            tz: timezone(buyer),
            amount: ask.amount,
            dedupe_days: buyer.dedupe_days,
            contacts,
            settled: false,
        }
    }

    /// Counts a sale that holds nothing (a sale replayed from the journal at start-up), its contacts included.
    pub fn record_sale(&self, buyer: &Buyer, amount: Money, at: DateTime<Utc>, contacts: &[Contact]) {
        let mut tally = self.tally.lock();
        tally.add_sale(local(timezone(buyer), at), amount);
        tally.contacts.record_sale(contacts, at, buyer.dedupe_days);
    }

    /// Each period's key, sales and spend at `now`, and the contacts sold within the buyer's window with when:
    /// what cluster mode rebuilds Redis from.
    pub fn snapshot(&self, buyer: &Buyer, now: DateTime<Utc>) -> CapacitySnapshot {
        let local = local(timezone(buyer), now);
        let tally = self.tally.lock();
        let periods = Period::ALL.map(|period| {
            let key = period.key(local);
            let (sales, spent) = tally.count(period, key);
            (key, sales, spent)
        });
        CapacitySnapshot { periods, contacts: tally.contacts.sold_since(now, buyer.dedupe_days) }
    }

    /// Forgets every count, hold and contact (cluster mode, before the local view is rebuilt from the books).
    pub fn reset(&self) {
        *self.tally.lock() = Tally::default();
    }

    /// True when `limit` pings are in flight from this node: the gates' cheap look before a slot is taken.
    pub fn slots_full(&self, limit: u32) -> bool {
        self.pings_in_flight.load(Ordering::Acquire) >= limit
    }

    /// True if the lead is a duplicate for the buyer: what a test post checks, which holds nothing.
    pub fn is_duplicate(&self, buyer: &Buyer, contacts: &[Contact], now: DateTime<Utc>) -> bool {
        self.tally.lock().contacts.is_duplicate(contacts, buyer.dedupe_days, now)
    }

    /// Takes a slot for one ping in flight, unless `limit` slots are taken. Without a limit the ping needs no
    /// slot.
    pub fn try_slot(self: &Arc<Self>, limit: Option<u32>) -> Result<Option<Slot>, Shortfall> {
        let Some(limit) = limit else { return Ok(None) };
        let taken =
            self.pings_in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1));
        match taken {
            Ok(_) => Ok(Some(Slot { capacity: Arc::clone(self) })),
            Err(_) => Err(Shortfall::Concurrency),
        }
    }

    /// Money held by winning bids not yet sold.
    pub fn held_money(&self) -> Money {
        self.tally.lock().held_money
    }

    /// What the buyer has used in its current periods at `now`, and what its held bids hold.
    pub fn usage(&self, buyer: &Buyer, now: DateTime<Utc>) -> Usage {
        let local = local(timezone(buyer), now);
        let tally = self.tally.lock();
        Usage {
            periods: Period::ALL.map(|period| tally.count(period, period.key(local))),
            held_units: tally.held_units,
            held_money: tally.held_money,
        }
    }
}

/// What a buyer has used and holds: its current periods' sales and spend (hourly to monthly), and what its
/// held bids hold. On one node its capacity counts it; in cluster mode Redis does, for every node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub periods: [(u32, Money); 4],
    pub held_units: u32,
    pub held_money: Money,
}

/// The operator's view: `caps` and `budgets` objects with `limit`, `used`, `held` and `remaining` for every
/// configured period, today's ramped limit as `caps.daily.limit`.
pub fn view(buyer: &Buyer, now: DateTime<Utc>, usage: &Usage) -> (Value, Value) {
    let local = local(timezone(buyer), now);
    let mut caps = Map::new();
    let mut budgets = Map::new();
    for (period, (sales, spent)) in Period::ALL.into_iter().zip(usage.periods) {
        let held_units = usage.held_units;
        if let Some(limit) = cap_limit(buyer, period, local.date()) {
            let remaining = limit.saturating_sub(sales + held_units);
            caps.insert(
                period.as_str().to_owned(),
                json!({"limit": limit, "used": sales, "held": held_units, "remaining": remaining}),
            );
        }
        if let Some(limit) = budget_limit(buyer, period) {
            let remaining = (limit - spent - usage.held_money).max(Money::ZERO);
            budgets.insert(
                period.as_str().to_owned(),
                json!({"limit": limit, "used": spent, "held": usage.held_money, "remaining": remaining}),
            );
        }
    }
    (Value::Object(caps), Value::Object(budgets))
}

/// What one buyer has sold in its current periods, and to whom within its duplicate window.
#[derive(Debug, Clone)]
pub struct CapacitySnapshot {
    /// Hourly to monthly: the period's key, its sales and its spend.
    pub periods: [(i64, u32, Money); 4],
    pub contacts: Vec<(Contact, DateTime<Utc>)>,
}

/// A winning bid's reservation: the lead's contacts, one unit of every cap and its price against budgets and
/// funds. Dropping it releases the reservation; [`Hold::commit`] turns it into a sale.
#[derive(Debug)]
pub struct Hold {
    capacity: Arc<BuyerCapacity>,
    tz: Tz,
    amount: Money,
    /// The buyer's window when the hold was taken: how long the sale's contacts are kept.
    dedupe_days: u32,
    /// The contacts reserved for this bid.
    contacts: Vec<Contact>,
    settled: bool,
}

impl Hold {
    /// The price held.
    pub fn amount(&self) -> Money {
        self.amount
    }

    /// Also reserves `contacts` (the real phone and email, known once the lead is posted), unless one is a
    /// duplicate for the buyer; the contacts this hold already has are its own and pass.
    pub fn reserve_contacts(&mut self, contacts: &[Contact], now: DateTime<Utc>) -> Result<(), Shortfall> {
        let mut tally = self.capacity.tally.lock();
        let added =
            tally.contacts.reserve(contacts, &self.contacts, self.dedupe_days, now).ok_or(Shortfall::Duplicate)?;
        self.contacts.extend(added);
        Ok(())
    }

    /// The held sale happened at `at`: count it in the periods of that moment, turn the contacts' reservation
    /// into history and release the rest, in one step so nothing is ever counted twice nor missing. Call it
    /// after the ledger has recorded the sale.
    pub fn commit(mut self, at: DateTime<Utc>) {
        let mut tally = self.capacity.tally.lock();
        tally.held_units -= 1;
        tally.held_money -= self.amount;
        tally.add_sale(local(self.tz, at), self.amount);
        tally.contacts.record_sale(&self.contacts, at, self.dedupe_days);
        self.settled = true;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.settled {
            let mut tally = self.capacity.tally.lock();
            tally.held_units -= 1;
            tally.held_money -= self.amount;
            tally.contacts.release(&self.contacts);
        }
    }
}

/// A ping in flight to a buyer with `concurrent_pings`; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    capacity: Arc<BuyerCapacity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.pings_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::buyer;
    use crate::config::{Ramp, Schedule};
    use chrono::Weekday;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
    }

    fn in_timezone(tz: &str) -> Buyer {
        let mut b = buyer("acme", &["auto"]);
        let days =
            vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
        let open = chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap();
        b.filters.schedule = Some(Schedule { timezone: tz.parse().unwrap(), days, open, close: open });
        b
    }

    fn funds(cents: i64) -> impl FnOnce() -> Money {
        move || Money::from_cents(cents)
    }

    fn ask(cents: i64) -> Ask<'static> {
        Ask { amount: Money::from_cents(cents), contacts: &[] }
    }

    fn contact(byte: u8) -> Contact {
        [byte; 32]
    }

    #[test]
    fn periods_roll_over_in_the_buyers_timezone() {
        let la = in_timezone("America/Los_Angeles");
        let same = |period: Period, a: &str, b: &str| {
            let tz = timezone(&la);
            period.key(local(tz, at(a))) == period.key(local(tz, at(b)))
        };
        let cases = [
            // 07:59Z and 08:01Z are 23:59 and 00:01 in Los Angeles (PST): the same UTC day, two LA days.
            ("LA midnight splits the day", Period::Daily, "2026-11-24T07:59:00Z", "2026-11-24T08:01:00Z", false),
            ("UTC midnight does not", Period::Daily, "2026-11-23T23:59:00Z", "2026-11-24T00:01:00Z", true),
            ("a week starts on Monday", Period::Weekly, "2026-11-30T07:59:00Z", "2026-11-30T08:00:00Z", false),
            ("Tuesday and Sunday share a week", Period::Weekly, "2026-11-24T20:00:00Z", "2026-11-29T20:00:00Z", true),
            ("months roll at local midnight", Period::Monthly, "2026-12-01T07:59:00Z", "2026-12-01T08:00:00Z", false),
            ("hours are local hours", Period::Hourly, "2026-11-23T10:00:00Z", "2026-11-23T10:59:59Z", true),
            ("next hour", Period::Hourly, "2026-11-23T10:59:59Z", "2026-11-23T11:00:00Z", false),
            // DST ends 2026-11-01 at 02:00 PDT: local midnight is 07:00Z before and 08:00Z after.
            (
                "day before fall back ends at 07:00Z",
                Period::Daily,
                "2026-10-31T06:59:00Z",
                "2026-10-31T07:01:00Z",
                false,
            ),
            (
                "day after fall back ends at 08:00Z",
                Period::Daily,
                "2026-11-02T07:59:00Z",
                "2026-11-02T08:01:00Z",
                false,
            ),
        ];
        for (name, period, a, b, expected) in cases {
            assert_eq!(same(period, a, b), expected, "{name}");
        }
    }

    #[test]
    fn every_cap_and_budget_counts_sales_and_holds() {
        type Case = (&'static str, fn(&mut Buyer), u32, Result<(), Shortfall>);
        let cases: Vec<Case> = vec![
            ("no caps", |_| {}, 50, Ok(())),
            ("hourly reached", |b| b.caps.hourly = Some(2), 2, Err(Shortfall::Cap(Period::Hourly))),
            ("hourly left", |b| b.caps.hourly = Some(3), 2, Ok(())),
            ("daily reached", |b| b.caps.daily = Some(2), 2, Err(Shortfall::Cap(Period::Daily))),
            ("weekly reached", |b| b.caps.weekly = Some(1), 1, Err(Shortfall::Cap(Period::Weekly))),
            ("monthly reached", |b| b.caps.monthly = Some(2), 2, Err(Shortfall::Cap(Period::Monthly))),
            // Two sales of 10.00 spent 20.00: another 10.00 fits 30.00 exactly, not 29.99.
            ("daily budget exact", |b| b.caps.daily_budget = Some(Money::from_cents(3000)), 2, Ok(())),
            (
                "daily budget short by a cent",
                |b| b.caps.daily_budget = Some(Money::from_cents(2999)),
                2,
                Err(Shortfall::Budget(Period::Daily)),
            ),
            (
                "monthly budget",
                |b| b.caps.monthly_budget = Some(Money::from_cents(1500)),
                1,
                Err(Shortfall::Budget(Period::Monthly)),
            ),
        ];
        let now = at("2026-11-23T12:00:00Z");
        for (name, change, sales, expected) in cases {
            let mut b = buyer("acme", &["auto"]);
            change(&mut b);
            let capacity = BuyerCapacity::default();
            for _ in 0..sales {
                capacity.record_sale(&b, Money::from_cents(1000), now, &[]);
            }
            let room = capacity.room(&b, now, now.naive_utc(), ask(1000), Money::from_cents(1_000_000));
            assert_eq!(room.caps, expected, "{name}");
        }
    }

    #[test]
    fn a_hold_reserves_until_dropped_or_committed() {
        let mut b = buyer("acme", &["auto"]);
        b.caps.daily = Some(2);
        let capacity = Arc::new(BuyerCapacity::default());
        let now = at("2026-11-23T12:00:00Z");
        let ten = Money::from_cents(1000);

        let first = capacity.try_hold(&b, now, ask(1000), funds(5000)).unwrap();
        let second = capacity.try_hold(&b, now, ask(1000), funds(5000)).unwrap();
        assert_eq!(capacity.try_hold(&b, now, ask(1000), funds(5000)).unwrap_err(), Shortfall::Cap(Period::Daily));
        assert_eq!(capacity.held_money(), Money::from_cents(2000));

        drop(second);
        assert_eq!(capacity.held_money(), ten, "a dropped hold gives its unit and money back");
        first.commit(now);
        assert_eq!(capacity.held_money(), Money::ZERO);
        let (caps, _) = view(&b, now, &capacity.usage(&b, now));
        assert_eq!(caps["daily"], json!({"limit": 2, "used": 1, "held": 0, "remaining": 1}));
    }

    #[test]
    fn funds_count_what_is_held() {
        let b = buyer("acme", &["auto"]);
        let capacity = Arc::new(BuyerCapacity::default());
        let now = Utc::now();
        let _held = capacity.try_hold(&b, now, ask(1500), funds(2000)).unwrap();
        let room = |cents| capacity.room(&b, now, now.naive_utc(), ask(cents), Money::from_cents(2000)).funds;
        assert_eq!(room(500), Ok(()));
        assert_eq!(room(501), Err(Shortfall::Balance));
        let short = capacity.try_hold(&b, now, ask(501), funds(2000));
        assert_eq!(short.unwrap_err(), Shortfall::Balance);
    }

    #[test]
    fn holds_taken_from_many_threads_never_exceed_the_cap() {
        let mut b = buyer("acme", &["auto"]);
        b.caps.daily = Some(3);
        let capacity = Arc::new(BuyerCapacity::default());
        let now = Utc::now();
        let holds: Vec<Option<Hold>> = std::thread::scope(|scope| {
            let tasks: Vec<_> =
                (0..16).map(|_| scope.spawn(|| capacity.try_hold(&b, now, ask(100), funds(1_000_000)).ok())).collect();
            tasks.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(holds.iter().flatten().count(), 3);
    }

    #[test]
    fn a_ramp_sets_todays_daily_limit() {
        let mut b = buyer("acme", &["auto"]);
        b.ramp = Some(Ramp { start: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(), daily_start: 10, daily_step: 10 });
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(daily_limit(&b, day(22)), Some(0), "before its start");
        assert_eq!(daily_limit(&b, day(23)), Some(10));
        assert_eq!(daily_limit(&b, day(26)), Some(40));
        b.caps.daily = Some(25);
        assert_eq!(daily_limit(&b, day(26)), Some(25), "never above caps.daily");
        b.ramp = None;
        assert_eq!(daily_limit(&b, day(26)), Some(25));
    }

    #[test]
    fn a_ramps_day_turns_at_the_buyers_midnight_not_utcs() {
        let mut la = in_timezone("America/Los_Angeles");
        la.ramp = Some(Ramp { start: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(), daily_start: 1, daily_step: 1 });
        // (UTC instant, the limit in force then): Los Angeles is UTC-8 in November.
        let table = [
            ("2026-11-23T07:59:59Z", 0), // 23:59 on the 22nd in Los Angeles: before the start
            ("2026-11-23T08:00:00Z", 1), // midnight: the ramp's first day
            ("2026-11-24T07:59:59Z", 1), // still the 23rd there, though the 24th in UTC
            ("2026-11-24T08:00:00Z", 2),
            ("2026-11-30T08:00:00Z", 8),
        ];
        for (instant, limit) in table {
            let now = at(instant);
            let capacity = Arc::new(BuyerCapacity::default());
            let holds: Vec<_> = (0..limit).map(|_| capacity.try_hold(&la, now, ask(0), funds(0)).unwrap()).collect();
            let past = capacity.try_hold(&la, now, ask(0), funds(0));
            assert_eq!(past.err(), Some(Shortfall::Cap(Period::Daily)), "{instant}: limit {limit}");
            assert_eq!(view(&la, now, &capacity.usage(&la, now)).0["daily"]["limit"], limit, "{instant}");
            drop(holds);
        }
    }

    #[test]
    fn slots_are_freed_when_dropped() {
        let capacity = Arc::new(BuyerCapacity::default());
        let first = capacity.try_slot(Some(1)).unwrap();
        assert!(first.is_some());
        assert_eq!(capacity.try_slot(Some(1)).unwrap_err(), Shortfall::Concurrency);
        drop(first);
        assert!(capacity.try_slot(Some(1)).unwrap().is_some());
        assert!(capacity.try_slot(None).unwrap().is_none(), "no limit, no slot to hold");
    }

    #[test]
    fn a_hold_reserves_the_leads_contacts_for_the_buyer() {
        let b = buyer("acme", &["auto"]);
        let capacity = Arc::new(BuyerCapacity::default());
        let now = at("2026-11-23T12:00:00Z");
        let (phone, email) = ([contact(1)], [contact(2)]);
        let both = [contact(1), contact(2)];
        let room = |contacts: &[Contact]| {
            let ask = Ask { amount: Money::ZERO, contacts };
            capacity.room(&b, now, now.naive_utc(), ask, Money::ZERO).duplicate
        };

        let hold = capacity.try_hold(&b, now, Ask { amount: Money::ZERO, contacts: &phone }, funds(0)).unwrap();
        assert_eq!(room(&both), Err(Shortfall::Duplicate), "the phone is held");
        assert_eq!(room(&email), Ok(()));
        let second = capacity.try_hold(&b, now, Ask { amount: Money::ZERO, contacts: &both }, funds(0));
        assert_eq!(second.unwrap_err(), Shortfall::Duplicate);
        assert_eq!(capacity.held_money(), Money::ZERO);
        assert_eq!(room(&email), Ok(()), "a refused hold reserved nothing");
        drop(hold);
        assert_eq!(room(&both), Ok(()), "a dropped hold gives its contacts back");

        let mut hold = capacity.try_hold(&b, now, Ask { amount: Money::ZERO, contacts: &phone }, funds(0)).unwrap();
        hold.reserve_contacts(&both, now).expect("its own phone and a free email");
        hold.commit(now);
        assert_eq!(room(&email), Err(Shortfall::Duplicate), "the sale is history for both contacts");
        let mut off = b.clone();
        off.dedupe_days = 0;
        let ask = Ask { amount: Money::ZERO, contacts: &both };
        assert_eq!(capacity.room(&off, now, now.naive_utc(), ask, Money::ZERO).duplicate, Ok(()), "dedupe off");
    }

    #[test]
    fn holds_of_one_contact_taken_from_many_threads_win_once() {
        let b = buyer("acme", &["auto"]);
        let capacity = Arc::new(BuyerCapacity::default());
        let now = Utc::now();
        let lead = [contact(7), contact(8)];
        let holds: Vec<Option<Hold>> = std::thread::scope(|scope| {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        capacity.try_hold(&b, now, Ask { amount: Money::ZERO, contacts: &lead }, funds(0)).ok()
                    })
                })
                .collect();
            tasks.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(holds.iter().flatten().count(), 1);
    }
}
