//! The return policy's decision (API.md section 4, rules 2–5), as a pure function of the policy, the lead's
//! delivery time, the clock and the buyer's recent returns. Rule 1 (disabled, unknown lead, already
//! returned) is about finding the lead and answers with an error status, so the ledger applies it.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::ReturnPolicy;

/// Where a return stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    Approved,
    PendingReview,
    Rejected,
}

impl ReturnStatus {
    pub fn label(self) -> &'static str {
        match self {
            ReturnStatus::Approved => "approved",
            ReturnStatus::PendingReview => "pending_review",
            ReturnStatus::Rejected => "rejected",
        }
    }
}

/// Why a return got its status; the labels are the contract's `decision_reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionReason {
    OutsideWindow,
    ReasonNotReturnable,
    RateCapExceeded,
    AutoApproved,
    OperatorApproved,
    OperatorRejected,
}

impl DecisionReason {
    pub fn label(self) -> &'static str {
        match self {
            DecisionReason::OutsideWindow => "outside_window",
            DecisionReason::ReasonNotReturnable => "reason_not_returnable",
            DecisionReason::RateCapExceeded => "rate_cap_exceeded",
            DecisionReason::AutoApproved => "auto_approved",
            DecisionReason::OperatorApproved => "operator_approved",
            DecisionReason::OperatorRejected => "operator_rejected",
        }
    }
}

/// The trailing period the rate cap looks at.
pub const RATE_CAP_PERIOD: Duration = Duration::days(30);

/// The buyer's figures over [`RATE_CAP_PERIOD`], for the rate cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecentReturns {
    /// Leads delivered to the buyer in the period.
    pub delivered: u64,
    /// Its returns filed in the period that are approved or pending review (rejected ones do not count).
    pub counted: u64,
}

/// Until when a lead delivered at `delivered_at` may be returned.
pub fn returnable_until(policy: &ReturnPolicy, delivered_at: DateTime<Utc>) -> DateTime<Utc> {
    delivered_at + Duration::days(i64::from(policy.window_days))
}

/// Whether a lead delivered at `delivered_at` may still be returned at `now` (rule 2).
pub fn within_window(policy: &ReturnPolicy, delivered_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now <= returnable_until(policy, delivered_at)
}

/// Rules 2–5: the status and reason of a new return filed at `now`.
///
/// The rate counts this return and the pending ones over the leads delivered in the period; a lead delivered
/// before the period still counts itself as delivered, so the rate is never a division by zero.
pub fn decide(
    policy: &ReturnPolicy,
    delivered_at: DateTime<Utc>,
    now: DateTime<Utc>,
    reason: &str,
    recent: RecentReturns,
    delivered_in_period: bool,
) -> (ReturnStatus, DecisionReason) {
    if !within_window(policy, delivered_at, now) {
        return (ReturnStatus::Rejected, DecisionReason::OutsideWindow);
    }
    if !policy.reasons.iter().any(|allowed| allowed == reason) {
        return (ReturnStatus::Rejected, DecisionReason::ReasonNotReturnable);
    }
    let delivered = recent.delivered + u64::from(!delivered_in_period);
    let rate_percent = Decimal::from(recent.counted + 1) * Decimal::ONE_HUNDRED / Decimal::from(delivered.max(1));
    if rate_percent > policy.rate_cap_percent {
        return (ReturnStatus::PendingReview, DecisionReason::RateCapExceeded);
    }
    (ReturnStatus::Approved, DecisionReason::AutoApproved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn recent(delivered: u64, counted: u64) -> RecentReturns {
        RecentReturns { delivered, counted }
    }

    /// Rules 2–5 in order; each row names the policy's terms and the expected decision.
    #[test]
    fn the_decision_follows_the_rules_in_order() {
        use DecisionReason::*;
        use ReturnStatus::*;
        let policy = ReturnPolicy::default(); // 7 days, the defect reasons, 10 %
        let delivered = at(1, 12);
        type Case = (&'static str, DateTime<Utc>, &'static str, RecentReturns, (ReturnStatus, DecisionReason));
        let cases: &[Case] = &[
            (
                "inside the window, a defect, rate 1/100",
                at(3, 0),
                "wrong_number",
                recent(100, 0),
                (Approved, AutoApproved),
            ),
            ("on the last instant of the window", at(8, 12), "wrong_number", recent(100, 0), (Approved, AutoApproved)),
            ("one hour past the window", at(8, 13), "wrong_number", recent(100, 0), (Rejected, OutsideWindow)),
            (
                "past the window beats a bad reason",
                at(9, 0),
                "did_not_convert",
                recent(100, 0),
                (Rejected, OutsideWindow),
            ),
            (
                "an outcome is not a defect",
                at(2, 0),
                "did_not_convert",
                recent(100, 0),
                (Rejected, ReasonNotReturnable),
            ),
            ("`other` is not in the default list", at(2, 0), "other", recent(100, 0), (Rejected, ReasonNotReturnable)),
            (
                "exactly at the cap is not above it: 10/100",
                at(2, 0),
                "duplicate",
                recent(100, 9),
                (Approved, AutoApproved),
            ),
            ("one over the cap: 11/100", at(2, 0), "duplicate", recent(100, 10), (PendingReview, RateCapExceeded)),
            (
                "a first return of a first lead is 100 %",
                at(2, 0),
                "duplicate",
                recent(1, 0),
                (PendingReview, RateCapExceeded),
            ),
        ];
        for (name, now, reason, recent, expected) in cases {
            assert_eq!(decide(&policy, delivered, *now, reason, *recent, true), *expected, "{name}");
        }
    }

    #[test]
    fn a_lead_from_before_the_period_counts_itself_as_delivered() {
        let policy =
            ReturnPolicy { window_days: 60, rate_cap_percent: Decimal::ONE_HUNDRED, ..ReturnPolicy::default() };
        let decision = decide(&policy, at(1, 0), at(20, 0), "fake_info", recent(0, 0), false);
        assert_eq!(decision, (ReturnStatus::Approved, DecisionReason::AutoApproved));
    }

    #[test]
    fn a_policy_with_its_own_reasons_and_cap() {
        let policy = ReturnPolicy {
            reasons: vec!["no_answer".into()],
            rate_cap_percent: Decimal::from(50),
            ..ReturnPolicy::default()
        };
        let decide_now = |reason, recent| decide(&policy, at(1, 0), at(2, 0), reason, recent, true);
        assert_eq!(decide_now("no_answer", recent(4, 1)), (ReturnStatus::Approved, DecisionReason::AutoApproved));
        assert_eq!(
            decide_now("no_answer", recent(4, 2)),
            (ReturnStatus::PendingReview, DecisionReason::RateCapExceeded)
        );
        assert_eq!(
            decide_now("wrong_number", recent(4, 0)),
            (ReturnStatus::Rejected, DecisionReason::ReasonNotReturnable)
        );
    }
}
