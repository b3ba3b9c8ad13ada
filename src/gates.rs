//! Gates: whether one buyer may be pinged for one lead, checked before any ping leaves.
//!
//! Gates run in a fixed order from cheapest to dearest and stop at the first that excludes (DESIGN.md):
//! paused / SLA state → campaign → state → postal code → schedule → rules → required fields → consent →
//! lead age → duplicate → caps and budget → concurrency → balance → time left. Each exclusion names its gate
//! in the audit trail and in `gavel_buyer_exclusions_total`.

use std::borrow::Cow;
use std::time::Duration;

use crate::config::{Buyer, Campaign};
use crate::domain::lead::Lead;

/// Why a buyer was not pinged. `detail()` is the audit trail's `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    Paused,
    Campaign,
    State,
    PostalCode,
    MissingField(String),
    Consent,
    InsufficientTime,
}

impl Exclusion {
    /// The name of the gate as the contract writes it (`missing_field:age`, `insufficient_time`, …).
    pub fn detail(&self) -> Cow<'static, str> {
        match self {
            Exclusion::Paused => "paused".into(),
            Exclusion::Campaign => "campaign".into(),
            Exclusion::State => "state".into(),
            Exclusion::PostalCode => "postal_code".into(),
            Exclusion::MissingField(key) => format!("missing_field:{key}").into(),
            Exclusion::Consent => "consent".into(),
            Exclusion::InsufficientTime => "insufficient_time".into(),
        }
    }
}

/// What the gates look at for one buyer in one auction.
pub struct GateInput<'a> {
    pub buyer: &'a Buyer,
    pub campaign: &'a Campaign,
    pub lead: &'a Lead,
    /// The time this buyer would have to answer; `None` for a fixed-price buyer, which is not pinged.
    pub buyer_time: Option<Duration>,
}

/// Runs the gates in order; `Ok` means the buyer may take part.
pub fn check(input: &GateInput<'_>) -> Result<(), Exclusion> {
    let GateInput { buyer, campaign, lead, buyer_time } = input;
    if buyer.paused {
        return Err(Exclusion::Paused);
    }
    if !buyer.takes(&campaign.id) {
        return Err(Exclusion::Campaign);
    }
    check_coverage(buyer, lead)?;
    if let Some(missing) = buyer.filters.required_fields.iter().find(|key| !lead.contains(key)) {
        return Err(Exclusion::MissingField(missing.clone()));
    }
    if buyer.filters.require_consent && !lead.has_consent() {
        return Err(Exclusion::Consent);
    }
    if let Some(time) = buyer_time {
        if *time < Duration::from_millis(campaign.min_buyer_ms) {
            return Err(Exclusion::InsufficientTime);
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
            let got = check(&GateInput { buyer: &b, campaign: &campaign, lead: &l, buyer_time: time });
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn details_are_the_contract_names() {
        assert_eq!(Exclusion::MissingField("age".into()).detail(), "missing_field:age");
        assert_eq!(Exclusion::InsufficientTime.detail(), "insufficient_time");
    }
}
