//! Gates: whether one buyer may be pinged for one lead, checked before any ping leaves.
//!
//! Gates run in a fixed order from cheapest to dearest and stop at the first that excludes (DESIGN.md):
//! paused / SLA state → campaign → state → postal code → schedule → rules → required fields → consent →
//! lead age → duplicate → caps and budget → concurrency → balance → time left. Each exclusion names its gate
//! in the audit trail and in `gavel_buyer_exclusions_total`.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc, Weekday};
use serde_json::Value;
use tokio::time::Instant;

use crate::buyers::BuyerState;
use crate::capacity::{timezone, Ask, Period, Shortfall};
use crate::config::{decimal_of, Buyer, Campaign, Rule, RuleOp, Schedule};
use crate::dedupe::Contact;
use crate::domain::lead::Lead;
use crate::health::Admission;
use crate::ledger::Ledger;
use crate::time::Moment;

/// Why a buyer was not pinged. `detail()` is the audit trail's `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    Paused,
    SlaPaused,
    Campaign,
    State,
    PostalCode,
    Schedule,
    Rule(String),
    MissingField(String),
    Consent,
    LeadAge,
    Duplicate,
    Cap(Period),
    Budget(Period),
    Concurrency,
    Balance,
    InsufficientTime,
}

impl Exclusion {
    /// The name of the gate as the contract writes it (`missing_field:age`, `cap:daily`, …).
    pub fn detail(&self) -> Cow<'static, str> {
        match self {
            Exclusion::Paused => "paused".into(),
            Exclusion::SlaPaused => "sla_paused".into(),
            Exclusion::Campaign => "campaign".into(),
            Exclusion::State => "state".into(),
            Exclusion::PostalCode => "postal_code".into(),
            Exclusion::Schedule => "schedule".into(),
            Exclusion::Rule(field) => format!("rule:{field}").into(),
            Exclusion::MissingField(key) => format!("missing_field:{key}").into(),
            Exclusion::Consent => "consent".into(),
            Exclusion::LeadAge => "lead_age".into(),
            Exclusion::Duplicate => "duplicate".into(),
            Exclusion::Cap(period) => format!("cap:{}", period.as_str()).into(),
            Exclusion::Budget(period) => format!("budget:{}", period.as_str()).into(),
            Exclusion::Concurrency => "concurrency".into(),
            Exclusion::Balance => "balance".into(),
            Exclusion::InsufficientTime => "insufficient_time".into(),
        }
    }
}

impl From<Shortfall> for Exclusion {
    fn from(shortfall: Shortfall) -> Self {
        match shortfall {
            Shortfall::Duplicate => Exclusion::Duplicate,
            Shortfall::Cap(period) => Exclusion::Cap(period),
            Shortfall::Budget(period) => Exclusion::Budget(period),
            Shortfall::Concurrency => Exclusion::Concurrency,
            Shortfall::Balance => Exclusion::Balance,
        }
    }
}

/// What the gates look at for one buyer in one auction.
pub struct GateInput<'a> {
    pub buyer: &'a Buyer,
    pub state: &'a BuyerState,
    pub campaign: &'a Campaign,
    pub lead: &'a Lead,
    /// The time this buyer would have to answer; `None` for a fixed-price buyer, which is not pinged.
    pub buyer_time: Option<Duration>,
    /// When the auction runs (read once per auction and passed in, so every gate sees the same moment).
    pub now: &'a Moment,
    /// The same moment on the monotonic clock, for the SLA breaker's cooldown.
    pub instant: Instant,
    /// A uniform draw in [0, 1) for this auction: a probing buyer takes part when it falls under its
    /// `probe_share`.
    pub draw: f64,
    /// The lead's phone and email digests, for the duplicate gate.
    pub contacts: &'a [Contact],
    pub ledger: &'a Ledger,
}

/// A buyer that passed every gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Its `concurrent_pings`, when it has one: the caller takes a slot before the ping leaves (from the
    /// coordinator, which counts pings in flight on every node).
    pub slot_limit: Option<u32>,
}

/// Runs the gates in order; `Ok` means the buyer may take part.
pub fn check(input: &GateInput<'_>) -> Result<Admitted, Exclusion> {
    let GateInput { buyer, state, campaign, lead, buyer_time, now, instant, draw, contacts, ledger } = input;
    if state.paused_by(buyer).is_some() {
        return Err(Exclusion::Paused);
    }
    if state.health.admit(&buyer.sla, *instant, *draw) == Admission::Excluded {
        return Err(Exclusion::SlaPaused);
    }
    let local = now.local(timezone(buyer));
    check_fit(buyer, campaign, lead, now.utc, local)?;
    // Nothing under the floor can win, so the floor is the least a buyer must have room for. The duplicate
    // check reads the buyer's sales and the reservations of its held bids, under the same lock as its caps.
    let ask = Ask { amount: campaign.floor, contacts };
    let room = state.capacity.room(buyer, now.utc, local, ask, state.funds(buyer, ledger));
    room.duplicate?;
    room.caps?;
    // A cheap look at this node's own pings in flight; the slot itself is taken once every buyer is gated.
    if buyer.caps.concurrent_pings.is_some_and(|limit| state.capacity.slots_full(limit)) {
        return Err(Exclusion::Concurrency);
    }
    room.funds?;
    if let Some(time) = buyer_time {
        if *time < Duration::from_millis(campaign.min_buyer_ms) {
            return Err(Exclusion::InsufficientTime);
        }
    }
    Ok(Admitted { slot_limit: buyer.caps.concurrent_pings })
}

/// The stateless gates: whether the lead fits the buyer's terms, whatever the buyer has bought before. `local`
/// is `now` in the buyer's timezone.
pub fn check_fit(
    buyer: &Buyer,
    campaign: &Campaign,
    lead: &Lead,
    now: DateTime<Utc>,
    local: NaiveDateTime,
) -> Result<(), Exclusion> {
    if !buyer.takes(&campaign.id) {
        return Err(Exclusion::Campaign);
    }
    check_coverage(buyer, lead)?;
    if let Some(schedule) = &buyer.filters.schedule {
        if !is_open(schedule, local) {
            return Err(Exclusion::Schedule);
        }
    }
    if let Some(failed) = buyer.filters.rules.iter().find(|rule| !rule_passes(rule, lead)) {
        return Err(Exclusion::Rule(failed.field.clone()));
    }
    if let Some(missing) = buyer.filters.required_fields.iter().find(|key| !lead.contains(key)) {
        return Err(Exclusion::MissingField(missing.clone()));
    }
    if buyer.filters.require_consent && !lead.has_consent() {
        return Err(Exclusion::Consent);
    }
    if let Some(max_age) = buyer.filters.max_lead_age_s {
        // A lead without `captured_at` was captured when its ping arrived; one from slightly in the future
        // (clock skew, bounded at parse time) is fresh.
        let age = lead.captured_at().map_or(chrono::Duration::zero(), |captured| now - captured);
        if age > chrono::Duration::seconds(max_age as i64) {
            return Err(Exclusion::LeadAge);
        }
    }
    Ok(())
}

/// Where the buyer takes leads. A lead without the key a filter needs does not fit it: a buyer that names
/// its states never receives a lead whose state is unknown.
fn check_coverage(buyer: &Buyer, lead: &Lead) -> Result<(), Exclusion> {
    let filters = &buyer.filters;
    if !filters.states.is_empty() {
        let state = lead.get_str("state");
        if !state.is_some_and(|state| filters.states.iter().any(|s| s == state)) {
            return Err(Exclusion::State);
        }
    }
    if !filters.postal_codes.is_empty() || !filters.exclude_postal_codes.is_empty() {
        let Some(zip) = lead.get_str("postal_code") else { return Err(Exclusion::PostalCode) };
        let covered = filters.postal_codes.is_empty() || filters.postal_codes.matches(zip);
        if !covered || filters.exclude_postal_codes.matches(zip) {
            return Err(Exclusion::PostalCode);
        }
    }
    Ok(())
}

/// Whether a schedule is open at a local time of its own timezone (converted with the tz database, so DST
/// is handled). A window whose close is at or before its open runs past midnight and belongs to the day it
/// opens.
pub fn is_open(schedule: &Schedule, local: NaiveDateTime) -> bool {
    let (day, time) = (local.weekday(), local.time());
    let open_on = |day: Weekday| schedule.days.contains(&day);
    if schedule.open < schedule.close {
        open_on(day) && schedule.open <= time && time < schedule.close
    } else {
        (open_on(day) && time >= schedule.open) || (open_on(day.pred()) && time < schedule.close)
    }
}

/// Whether a lead passes one rule. A missing (or null) field fails every op: a buyer that filters on a field
/// is never sent a lead whose value it cannot know. Numbers compare as exact decimals, numeric text included.
pub fn rule_passes(rule: &Rule, lead: &Lead) -> bool {
    let Some(value) = lead.get(&rule.field).filter(|v| !v.is_null()) else { return false };
    let expected = rule.value.as_ref();
    match rule.op {
        RuleOp::Exists => true,
        RuleOp::Eq => expected.is_some_and(|e| same(value, e)),
        RuleOp::Ne => expected.is_some_and(|e| !same(value, e)),
        RuleOp::In => listed(expected, value),
        RuleOp::NotIn => !listed(expected, value),
        RuleOp::Gt | RuleOp::Gte | RuleOp::Lt | RuleOp::Lte => {
            let (Some(have), Some(want)) = (decimal_of(value), rule.number) else { return false };
            match rule.op {
                RuleOp::Gt => have > want,
                RuleOp::Gte => have >= want,
                RuleOp::Lt => have < want,
                _ => have <= want,
            }
        }
    }
}

fn listed(list: Option<&Value>, value: &Value) -> bool {
    list.and_then(Value::as_array).is_some_and(|items| items.iter().any(|item| same(value, item)))
}

/// Equality where 34, 34.0 and "34" are the same number; other values compare as JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => match (decimal_of(a), decimal_of(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::String(x), Value::String(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{buyer, campaign};
    use chrono::Utc;
    use serde_json::json;

    fn zips(codes: &[&str]) -> crate::config::PostalCodes {
        crate::config::PostalCodes::new(codes.iter().map(|c| (*c).to_owned()).collect())
    }

    fn lead(value: serde_json::Value) -> Lead {
        Lead::parse(value.as_object().unwrap(), Utc::now()).unwrap()
    }

    /// One buyer's running state, its ledger and the lead's earlier sales, so a test states only what it
    /// changes.
    struct Fixture {
        state: BuyerState,
        ledger: Ledger,
    }

    impl Fixture {
        /// A prepaid buyer with 100.00 in its wallet.
        fn funded() -> Fixture {
            let fixture = Fixture { state: BuyerState::new("acme"), ledger: Ledger::in_memory() };
            fixture.deposit(10_000);
            fixture
        }

        fn deposit(&self, cents: i64) {
            let deposit = crate::ledger::Deposit {
                deposit_id: "d_1".into(),
                buyer: "acme".into(),
                amount: crate::domain::money::Money::from_cents(cents),
                reference: None,
                at: Utc::now(),
                idempotency_key: None,
            };
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(self.ledger.record_deposit(deposit)).expect("in-memory books record");
        }

        fn check(
            &self,
            buyer: &Buyer,
            campaign: &Campaign,
            lead: &Lead,
            buyer_time: Option<Duration>,
            now: DateTime<Utc>,
        ) -> Result<(), Exclusion> {
            let now = Moment::new(now);
            let input = GateInput {
                buyer,
                state: &self.state,
                campaign,
                lead,
                buyer_time,
                now: &now,
                instant: Instant::now(),
                draw: 0.5,
                contacts: &crate::dedupe::contacts_of(lead),
                ledger: &self.ledger,
            };
            check(&input).map(|_| ())
        }
    }

    /// (name, change to a default buyer, lead, time the buyer would have, expected verdict)
    type Case = (&'static str, fn(&mut Buyer), serde_json::Value, Option<Duration>, Result<(), Exclusion>);

    #[test]
    fn gates_exclude_in_order_and_name_the_gate() {
        let campaign = campaign("auto");
        let consent = json!({"age": 30, "jornaya_leadid": "123e4567-e89b-12d3-a456-426614174000"});
        let ms = |n| Some(Duration::from_millis(n));
        let cases: Vec<Case> = vec![
            ("eligible", |_| {}, json!({"age": 30}), ms(100), Ok(())),
            (
                "paused beats everything",
                |b| {
                    b.paused = true;
                    b.campaigns.clear()
                },
                json!({}),
                ms(1),
                Err(Exclusion::Paused),
            ),
            ("other campaign", |b| b.campaigns = vec!["home".into()], json!({}), ms(100), Err(Exclusion::Campaign)),
            (
                "state listed",
                |b| b.filters.states = vec!["CA".into(), "NV".into()],
                json!({"state": "nv"}),
                ms(100),
                Ok(()),
            ),
            (
                "state not listed",
                |b| b.filters.states = vec!["NV".into()],
                json!({"state": "CA"}),
                ms(100),
                Err(Exclusion::State),
            ),
            ("state unknown", |b| b.filters.states = vec!["CA".into()], json!({}), ms(100), Err(Exclusion::State)),
            (
                "zip exact",
                |b| b.filters.postal_codes = zips(&["94107"]),
                json!({"postal_code": "94107-1234"}),
                ms(100),
                Ok(()),
            ),
            (
                "zip by prefix",
                |b| b.filters.postal_codes = zips(&["941"]),
                json!({"postal_code": "94110"}),
                ms(100),
                Ok(()),
            ),
            (
                "zip not covered",
                |b| b.filters.postal_codes = zips(&["941", "90210"]),
                json!({"postal_code": "94210"}),
                ms(100),
                Err(Exclusion::PostalCode),
            ),
            (
                "zip excluded inside a prefix",
                |b| {
                    b.filters.postal_codes = zips(&["941"]);
                    b.filters.exclude_postal_codes = zips(&["94130"])
                },
                json!({"postal_code": "94130"}),
                ms(100),
                Err(Exclusion::PostalCode),
            ),
            (
                "zip excluded by prefix",
                |b| b.filters.exclude_postal_codes = zips(&["100"]),
                json!({"postal_code": "10001"}),
                ms(100),
                Err(Exclusion::PostalCode),
            ),
            (
                "zip outside exclusions",
                |b| b.filters.exclude_postal_codes = zips(&["100"]),
                json!({"postal_code": "94107"}),
                ms(100),
                Ok(()),
            ),
            (
                "zip unknown",
                |b| b.filters.exclude_postal_codes = zips(&["100"]),
                json!({}),
                ms(100),
                Err(Exclusion::PostalCode),
            ),
            (
                "state checked before zip",
                |b| {
                    b.filters.states = vec!["NV".into()];
                    b.filters.postal_codes = zips(&["999"])
                },
                json!({"state": "CA", "postal_code": "94107"}),
                ms(100),
                Err(Exclusion::State),
            ),
            (
                "required field missing",
                |b| b.filters.required_fields = vec!["age".into(), "zip".into()],
                json!({"age": 1}),
                ms(100),
                Err(Exclusion::MissingField("zip".into())),
            ),
            (
                "consent demanded",
                |b| b.filters.require_consent = true,
                json!({"age": 30}),
                ms(100),
                Err(Exclusion::Consent),
            ),
            ("consent given", |b| b.filters.require_consent = true, consent, ms(100), Ok(())),
            ("too little time", |_| {}, json!({}), ms(19), Err(Exclusion::InsufficientTime)),
            ("just enough time", |_| {}, json!({}), ms(20), Ok(())),
            ("fixed price needs no time", |_| {}, json!({}), None, Ok(())),
        ];
        for (name, change, lead_json, time, expected) in cases {
            let mut b = buyer("acme", &["auto"]);
            change(&mut b);
            let l = lead(lead_json);
            let got = Fixture::funded().check(&b, &campaign, &l, time, Utc::now());
            assert_eq!(got, expected, "{name}");
        }
    }

    fn schedule(tz: &str, days: &[Weekday], open: &str, close: &str) -> Schedule {
        Schedule {
            timezone: tz.parse().unwrap(),
            days: days.to_vec(),
            open: chrono::NaiveTime::parse_from_str(open, "%H:%M").unwrap(),
            close: chrono::NaiveTime::parse_from_str(close, "%H:%M").unwrap(),
        }
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn schedules_follow_the_buyers_timezone_across_midnight_and_dst() {
        use Weekday::*;
        let weekdays = [Mon, Tue, Wed, Thu, Fri];
        let office = schedule("America/Los_Angeles", &weekdays, "08:00", "20:00");
        let night = schedule("America/Los_Angeles", &weekdays, "22:00", "06:00");
        let cases = [
            ("Mon 08:00 PST opens", &office, "2026-11-23T16:00:00Z", true),
            ("Mon 07:59 PST", &office, "2026-11-23T15:59:00Z", false),
            ("Mon 19:59 PST", &office, "2026-11-24T03:59:00Z", true),
            ("Mon 20:00 PST closes", &office, "2026-11-24T04:00:00Z", false),
            ("Sat noon", &office, "2026-11-28T20:00:00Z", false),
            // US DST began 2026-03-08: 15:00Z is 08:00 PDT on Monday (07:00 under a fixed -08:00).
            ("Mon after spring forward", &office, "2026-03-09T15:00:00Z", true),
            ("Fri before spring forward", &office, "2026-03-06T15:00:00Z", false),
            ("Fri 23:00 opens overnight", &night, "2026-11-28T07:00:00Z", true),
            ("Sat 03:00 is Friday's night", &night, "2026-11-28T11:00:00Z", true),
            ("Sat 23:00: Saturday not listed", &night, "2026-11-29T07:00:00Z", false),
            ("Mon 03:00: Sunday not listed", &night, "2026-11-23T11:00:00Z", false),
            ("Tue 05:59 still Monday's night", &night, "2026-11-24T13:59:00Z", true),
            ("Tue 06:00 closes", &night, "2026-11-24T14:00:00Z", false),
        ];
        for (name, schedule, now, open) in cases {
            let local = at(now).with_timezone(&schedule.timezone).naive_local();
            assert_eq!(is_open(schedule, local), open, "{name}");
        }
    }

    #[test]
    fn a_closed_schedule_excludes_the_buyer() {
        let campaign = campaign("auto");
        let mut b = buyer("acme", &["auto"]);
        b.filters.schedule = Some(schedule("UTC", &[Weekday::Mon], "09:00", "17:00"));
        let l = lead(json!({}));
        let gates = Fixture::funded();
        assert_eq!(gates.check(&b, &campaign, &l, None, at("2026-11-23T10:00:00Z")), Ok(()));
        assert_eq!(gates.check(&b, &campaign, &l, None, at("2026-11-24T10:00:00Z")), Err(Exclusion::Schedule));
    }

    #[test]
    fn rules_are_typed_and_a_missing_field_fails() {
        use RuleOp::*;
        let lead = lead(json!({"age": 34, "income": "85000.50", "homeowner": true, "state": "CA", "notes": null}));
        let cases = [
            ("age", Gte, Some(json!(21)), true),
            ("age", Gte, Some(json!(34.0)), true),
            ("age", Gt, Some(json!(34)), false),
            ("age", Lt, Some(json!("100")), true),
            ("age", Lte, Some(json!(33.99)), false),
            ("income", Gt, Some(json!(85000)), true),
            ("age", Eq, Some(json!(34)), true),
            ("age", Eq, Some(json!("34")), true),
            ("age", Ne, Some(json!(35)), true),
            ("homeowner", Eq, Some(json!(true)), true),
            ("homeowner", Eq, Some(json!("true")), false),
            ("state", In, Some(json!(["NV", "CA"])), true),
            ("state", NotIn, Some(json!(["NV", "CA"])), false),
            ("state", Gt, Some(json!(1)), false),
            ("age", Exists, None, true),
            ("notes", Exists, None, false),
            ("missing", Exists, None, false),
            ("missing", Ne, Some(json!(1)), false),
            ("missing", NotIn, Some(json!([1])), false),
            ("missing", Lt, Some(json!(1)), false),
        ];
        for (field, op, value, passes) in cases {
            let rule = Rule::new(field.into(), op, value.clone());
            assert_eq!(rule_passes(&rule, &lead), passes, "{field} {op:?} {value:?}");
        }
    }

    #[test]
    fn the_first_failing_rule_names_its_field() {
        let campaign = campaign("auto");
        let mut b = buyer("acme", &["auto"]);
        b.filters.rules = vec![
            Rule::new("age".into(), RuleOp::Gte, Some(json!(21))),
            Rule::new("homeowner".into(), RuleOp::Eq, Some(json!(true))),
        ];
        let l = lead(json!({"age": 30, "homeowner": false}));
        let got = Fixture::funded().check(&b, &campaign, &l, None, Utc::now());
        assert_eq!(got, Err(Exclusion::Rule("homeowner".into())));
        assert_eq!(Exclusion::Rule("homeowner".into()).detail(), "rule:homeowner");
    }

    #[test]
    fn details_are_the_contract_names() {
        assert_eq!(Exclusion::MissingField("age".into()).detail(), "missing_field:age");
        assert_eq!(Exclusion::InsufficientTime.detail(), "insufficient_time");
    }
}
