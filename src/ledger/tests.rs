use chrono::{Duration, TimeZone};
use proptest::prelude::*;
use serde_json::Map;

use super::*;
use crate::config::ReturnPolicy;
use crate::domain::returns::DecisionReason;

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
}

fn sale(lead_id: &str, buyer: &str, price: i64, payout: i64, at: DateTime<Utc>) -> Sale {
    Sale {
        lead_id: lead_id.into(),
        ping_id: "p_1".into(),
        campaign: "auto".into(),
        seller: "acme".into(),
        buyer: buyer.into(),
        source: None,
        price: Money::from_cents(price),
        payout: Money::from_cents(payout),
        at,
        lead: Map::new(),
        terms_id: 0,
    }
}

/// Records a sale under revision `rev-1`, its terms naming the buyer.
async fn sell(ledger: &Ledger, sale: Sale) -> Result<String, LedgerError> {
    sell_under(ledger, sale, "rev-1").await
}

async fn sell_under(ledger: &Ledger, sale: Sale, revision: &str) -> Result<String, LedgerError> {
    let terms = serde_json::json!({"buyer": sale.buyer, "revision": revision});
    ledger.record_sale(sale, revision, || terms).await
}

fn deposit(buyer: &str, cents: i64) -> Deposit {
    Deposit {
        deposit_id: new_id("d_"),
        buyer: buyer.into(),
        amount: Money::from_cents(cents),
        reference: None,
        at: at(1),
        idempotency_key: None,
    }
}

fn buyer(id: &str, returns: ReturnPolicy) -> Buyer {
    let mut buyer = crate::config::test_support::buyer(id, &["auto"]);
    buyer.returns = returns;
    buyer
}

fn request(lead_id: &str, reason: &str) -> ReturnRequest {
    ReturnRequest { lead_id: lead_id.into(), reason: reason.into(), note: None }
}

fn total(ledger: &Ledger) -> Money {
    ledger.balances().iter().map(|(_, m)| *m).sum()
}

#[tokio::test]
async fn a_sale_moves_money_between_three_accounts_and_sums_to_zero() {
    let ledger = Ledger::in_memory();
    sell(&ledger, sale("l_1", "best", 1250, 1125, at(1))).await.unwrap();
    sell(&ledger, sale("l_2", "best", 999, 849, at(1))).await.unwrap();
    assert_eq!(ledger.balance("buyer:best"), Money::from_cents(-2249));
    assert_eq!(ledger.balance("seller:acme"), Money::from_cents(1974));
    assert_eq!(ledger.balance(REVENUE), Money::from_cents(275));
    assert_eq!(total(&ledger), Money::ZERO);
}

#[tokio::test]
async fn a_deposit_credits_the_buyer_and_keeps_the_sum_at_zero() {
    let ledger = Ledger::in_memory();
    assert_eq!(ledger.record_deposit(deposit("best", 50_000)).await.unwrap().balance, Money::from_cents(50_000));
    sell(&ledger, sale("l_1", "best", 1250, 1125, at(1))).await.unwrap();
    assert_eq!(ledger.record_deposit(deposit("best", 100)).await.unwrap().balance, Money::from_cents(48_850));
    assert_eq!(ledger.balance(DEPOSITS), Money::from_cents(-50_100));
    assert_eq!(total(&ledger), Money::ZERO);
}

/// A keyed deposit is found again by its account and key, also in books restored from a snapshot; another
/// account's same key is its own.
#[tokio::test]
async fn a_keyed_deposit_is_recorded_once_and_its_key_survives_a_snapshot() {
    let ledger = Ledger::in_memory();
    let keyed = Deposit { idempotency_key: Some("wire-1".into()), ..deposit("best", 500) };
    let first = ledger.record_deposit(keyed.clone()).await.unwrap();
    let again = ledger.record_deposit(Deposit { deposit_id: new_id("d_"), ..keyed.clone() }).await.unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(
        (again.id, again.transaction_id, again.balance),
        (first.id.clone(), first.transaction_id, first.balance)
    );
    let other = Deposit { amount: Money::from_cents(501), ..keyed.clone() };
    assert!(matches!(ledger.record_deposit(other).await, Err(LedgerError::KeyReused { .. })));
    let elsewhere = Deposit { buyer: "other".into(), ..keyed };
    assert!(!ledger.record_deposit(elsewhere).await.unwrap().replayed);
    assert_eq!(ledger.balance("buyer:best"), Money::from_cents(500));

    let restored = ledger.read(|books| Books::from_snapshot(&serde_json::to_vec(books).unwrap()).unwrap());
    assert_eq!(restored.keyed_move("buyer:best", "wire-1").map(|m| m.id.clone()), Some(first.id));
    assert!(restored.keyed_move("seller:best", "wire-1").is_none());
}

#[tokio::test]
async fn a_lead_is_never_booked_twice() {
    let ledger = Ledger::in_memory();
    sell(&ledger, sale("l_1", "best", 100, 90, at(1))).await.unwrap();
    assert!(matches!(sell(&ledger, sale("l_1", "best", 100, 90, at(1))).await, Err(LedgerError::DuplicateSale(_))));
    assert_eq!(ledger.sale_count(), 1);
}

#[tokio::test]
async fn an_approved_return_reverses_the_sale_exactly() {
    let ledger = Ledger::in_memory();
    let best = buyer("best", ReturnPolicy { rate_cap_percent: Decimal::ONE_HUNDRED, ..ReturnPolicy::default() });
    ledger.record_deposit(deposit("best", 10_000)).await.unwrap();
    sell(&ledger, sale("l_1", "best", 1250, 1125, at(1))).await.unwrap();
    let filed = ledger.file_return(&best, request("l_1", "wrong_number"), at(2)).await.unwrap();
    assert_eq!((filed.status, filed.decision_reason), (ReturnStatus::Approved, DecisionReason::AutoApproved));
    assert_eq!((filed.credit, filed.clawback), (Money::from_cents(1250), Money::from_cents(1125)));
    assert_eq!(ledger.balance("buyer:best"), Money::from_cents(10_000));
    assert_eq!(ledger.balance("seller:acme"), Money::ZERO);
    assert_eq!(ledger.balance(REVENUE), Money::ZERO);
    assert_eq!(total(&ledger), Money::ZERO);
}

use rust_decimal::Decimal;

/// Rule 1 of the return policy: disabled, unknown or someone else's lead, already returned.
#[tokio::test]
async fn returns_refused_before_the_policy_decides() {
    let ledger = Ledger::in_memory();
    let best = buyer("best", ReturnPolicy { rate_cap_percent: Decimal::ONE_HUNDRED, ..ReturnPolicy::default() });
    let other = buyer("other", ReturnPolicy::default());
    let disabled = buyer("best", ReturnPolicy { enabled: false, ..ReturnPolicy::default() });
    sell(&ledger, sale("l_1", "best", 1000, 900, at(1))).await.unwrap();
    assert!(matches!(
        ledger.file_return(&disabled, request("l_1", "duplicate"), at(2)).await,
        Err(ReturnError::Disabled)
    ));
    assert!(matches!(
        ledger.file_return(&best, request("l_nope", "duplicate"), at(2)).await,
        Err(ReturnError::UnknownLead)
    ));
    assert!(matches!(
        ledger.file_return(&other, request("l_1", "duplicate"), at(2)).await,
        Err(ReturnError::UnknownLead)
    ));
    ledger.file_return(&best, request("l_1", "did_not_convert"), at(2)).await.unwrap();
    // A rejected return is still the lead's return: a second one is refused.
    assert!(matches!(
        ledger.file_return(&best, request("l_1", "duplicate"), at(2)).await,
        Err(ReturnError::AlreadyReturned)
    ));
}

#[tokio::test]
async fn over_the_rate_cap_a_return_waits_for_the_operator() {
    let ledger = Ledger::in_memory();
    let best = buyer("best", ReturnPolicy { rate_cap_percent: Decimal::from(50), ..ReturnPolicy::default() });
    for i in 0..4 {
        sell(&ledger, sale(&format!("l_{i}"), "best", 1000, 900, at(1))).await.unwrap();
    }
    // 1/4 and 2/4 are at most 50 %; the third (3/4, counting the pending one) is above it.
    for (lead, expected) in [("l_0", ReturnStatus::Approved), ("l_1", ReturnStatus::Approved)] {
        assert_eq!(ledger.file_return(&best, request(lead, "duplicate"), at(2)).await.unwrap().status, expected);
    }
    let pending = ledger.file_return(&best, request("l_2", "duplicate"), at(2)).await.unwrap();
    assert_eq!(
        (pending.status, pending.decision_reason),
        (ReturnStatus::PendingReview, DecisionReason::RateCapExceeded)
    );
    assert_eq!(pending.credit, Money::ZERO);
    let before = ledger.balance("buyer:best");
    let rejected = ledger.decide_return(&pending.return_id, false, Some("looks fine".into()), at(3)).await.unwrap();
    assert_eq!((rejected.status, rejected.decision_reason), (ReturnStatus::Rejected, DecisionReason::OperatorRejected));
    assert_eq!(ledger.balance("buyer:best"), before);
    assert!(matches!(
        ledger.decide_return(&pending.return_id, true, None, at(3)).await,
        Err(ReturnError::AlreadyDecided)
    ));
    let pending = ledger.file_return(&best, request("l_3", "fake_info"), at(3)).await.unwrap();
    let approved = ledger.decide_return(&pending.return_id, true, None, at(4)).await.unwrap();
    assert_eq!((approved.status, approved.decision_reason), (ReturnStatus::Approved, DecisionReason::OperatorApproved));
    assert_eq!(approved.decided_at, Some(at(4)));
    assert_eq!(ledger.balance("buyer:best"), before + Money::from_cents(1000));
    assert_eq!(total(&ledger), Money::ZERO);
}

#[tokio::test]
async fn the_report_agrees_with_the_ledger() {
    let ledger = Ledger::in_memory();
    let best = buyer("best", ReturnPolicy { rate_cap_percent: Decimal::ONE_HUNDRED, ..ReturnPolicy::default() });
    let mut with_source = sale("l_1", "best", 2000, 1800, at(2));
    with_source.source = Some("site-a".into());
    sell(&ledger, with_source).await.unwrap();
    sell(&ledger, sale("l_2", "best", 1000, 900, at(2))).await.unwrap();
    sell(&ledger, sale("l_old", "best", 500, 450, at(1) - Duration::days(20))).await.unwrap();
    ledger.file_return(&best, request("l_1", "wrong_number"), at(3)).await.unwrap();
    ledger.file_return(&best, request("l_old", "wrong_number"), at(1) - Duration::days(19)).await.unwrap();

    let report = ledger.read(|books| report::report(books, at(1), at(10)));
    let buyer_row = &report.buyers[0];
    assert_eq!(
        (buyer_row.sold, buyer_row.gross, buyer_row.payouts),
        (2, Money::from_cents(3000), Money::from_cents(2700))
    );
    assert_eq!((buyer_row.returns.count, buyer_row.returns.amount), (1, Money::from_cents(2000)));
    assert_eq!(buyer_row.net, Money::from_cents(1000));
    assert_eq!(buyer_row.returns.by_reason["wrong_number"], 1);
    let seller = &report.sellers[0];
    assert_eq!(seller.return_rate, 0.5);
    let sources: Vec<_> = seller.sources.iter().map(|s| (s.id.as_deref(), s.sold, s.return_rate)).collect();
    assert_eq!(sources, [(None, 1, 0.0), (Some("site-a"), 1, 1.0)]);
    // Over all time the net margin is the platform's revenue.
    let all = ledger.read(|books| report::report(books, at(1) - Duration::days(365), at(30)));
    assert_eq!(all.campaigns[0].net_margin, ledger.balance(REVENUE));
    assert_eq!(all.sellers[0].row.net_payouts, ledger.balance("seller:acme"));
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Deposit { buyer: usize, cents: i64 },
    Sale { buyer: usize, cents: i64, margin: i64, revision: u8 },
    Return { sale: usize, reason: usize },
    Decide { filed: usize, approve: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, 1..1_000_000i64).prop_map(|(buyer, cents)| Step::Deposit { buyer, cents }),
        (0..3usize, 1..100_000i64, 0..100i64, 0..2u8).prop_map(|(buyer, cents, margin, revision)| Step::Sale {
            buyer,
            cents,
            margin,
            revision
        }),
        (0..64usize, 0..3usize).prop_map(|(sale, reason)| Step::Return { sale, reason }),
        (0..64usize, any::<bool>()).prop_map(|(filed, approve)| Step::Decide { filed, approve }),
    ]
}

/// Runs a random history on `ledger`; returns what the balances must be, computed independently.
async fn run_history(ledger: &Ledger, steps: &[Step]) -> BTreeMap<String, Money> {
    let buyers: Vec<Buyer> = (0..3)
        .map(|i| {
            buyer(&format!("b{i}"), ReturnPolicy { rate_cap_percent: Decimal::from(40), ..ReturnPolicy::default() })
        })
        .collect();
    let mut expected: BTreeMap<String, Money> = BTreeMap::new();
    let mut post = |account: String, amount: Money| *expected.entry(account).or_default() += amount;
    let mut sales: Vec<Sale> = Vec::new();
    let mut filed: Vec<String> = Vec::new();
    let reasons = ["wrong_number", "did_not_convert", "fake_info"];
    for step in steps {
        match *step {
            Step::Deposit { buyer, cents } => {
                ledger.record_deposit(deposit(&buyers[buyer].id, cents)).await.unwrap();
                post(DEPOSITS.into(), -Money::from_cents(cents));
                post(buyer_account(&buyers[buyer].id), Money::from_cents(cents));
            }
            Step::Sale { buyer, cents, margin, revision } => {
                let payout = cents * (100 - margin) / 100;
                let sold = sale(&new_id("l_"), &buyers[buyer].id, cents, payout, at(2));
                sell_under(ledger, sold.clone(), &format!("rev-{revision}")).await.unwrap();
                post(buyer_account(&sold.buyer), -sold.price);
                post(seller_account(&sold.seller), sold.payout);
                post(REVENUE.into(), sold.price - sold.payout);
                sales.push(sold);
            }
            Step::Return { sale, reason } if sale < sales.len() => {
                let sold = &sales[sale];
                let owner = buyers.iter().find(|b| b.id == sold.buyer).unwrap();
                match ledger.file_return(owner, request(&sold.lead_id, reasons[reason]), at(3)).await {
                    Ok(r) => {
                        if r.status == ReturnStatus::Approved {
                            post(buyer_account(&sold.buyer), sold.price);
                            post(seller_account(&sold.seller), -sold.payout);
                            post(REVENUE.into(), sold.payout - sold.price);
                        }
                        filed.push(r.return_id);
                    }
                    Err(ReturnError::AlreadyReturned) => {}
                    Err(other) => panic!("{other}"),
                }
            }
            Step::Decide { filed: index, approve } if index < filed.len() => {
                match ledger.decide_return(&filed[index], approve, None, at(4)).await {
                    Ok(r) if approve => {
                        let sold = sales.iter().find(|s| s.lead_id == r.lead_id).unwrap();
                        post(buyer_account(&sold.buyer), sold.price);
                        post(seller_account(&sold.seller), -sold.payout);
                        post(REVENUE.into(), sold.payout - sold.price);
                    }
                    Ok(_) | Err(ReturnError::AlreadyDecided) => {}
                    Err(other) => panic!("{other}"),
                }
            }
            Step::Return { .. } | Step::Decide { .. } => {}
        }
    }
    expected.retain(|_, amount| !amount.is_zero());
    expected
}

use std::collections::BTreeMap;

fn nonzero_balances(ledger: &Ledger) -> BTreeMap<String, Money> {
    ledger.balances().into_iter().filter(|(_, m)| !m.is_zero()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any history of deposits, sales, returns and decisions leaves every balance exactly where the
    /// postings say and the total at zero.
    #[test]
    fn every_history_keeps_balances_exact_and_the_total_at_zero(steps in prop::collection::vec(step(), 1..80)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let ledger = Ledger::in_memory();
        let expected = runtime.block_on(run_history(&ledger, &steps));
        prop_assert_eq!(nonzero_balances(&ledger), expected);
        prop_assert_eq!(total(&ledger), Money::ZERO);
    }

    /// Replaying the journal of any history rebuilds the same books and balances.
    #[test]
    fn replaying_the_journal_rebuilds_the_same_state(steps in prop::collection::vec(step(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // What is replayed matters here, not when it reached the disk: no fsync keeps 256 cases quick.
        let options = JournalOptions { fsync: false, ..JournalOptions::default() };
        let (books, balances) = runtime.block_on(async {
            let (ledger, _) = Ledger::open(dir.path(), options.clone()).unwrap();
            run_history(&ledger, &steps).await;
            ledger.close().await.unwrap();
            (ledger.read(|books| serde_json::to_value(books).unwrap()), nonzero_balances(&ledger))
        });
        let (replayed, recovery) = Ledger::open(dir.path(), options).unwrap();
        prop_assert!(recovery.warnings.is_empty());
        prop_assert_eq!(replayed.read(|books| serde_json::to_value(books).unwrap()), books);
        prop_assert_eq!(nonzero_balances(&replayed), balances);
    }
}

#[tokio::test]
async fn terms_are_recorded_once_per_buyer_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), JournalOptions::default()).unwrap();
    sell(&ledger, sale("l_1", "best", 1000, 900, at(1))).await.unwrap();
    sell(&ledger, sale("l_2", "best", 1000, 900, at(1))).await.unwrap();
    sell(&ledger, sale("l_3", "other", 1000, 900, at(1))).await.unwrap();
    sell_under(&ledger, sale("l_4", "best", 1000, 900, at(2)), "rev-2").await.unwrap();
    // Asked for terms only when they are new.
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let later = sale("l_5", "best", 1000, 900, at(2));
    let flag = Arc::clone(&asked);
    ledger
        .record_sale(later, "rev-2", move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Value::Null
        })
        .await
        .unwrap();
    assert!(!asked.load(std::sync::atomic::Ordering::SeqCst));
    ledger.close().await.unwrap();
    drop(ledger);

    let (replayed, _) = Ledger::open(dir.path(), JournalOptions::default()).unwrap();
    replayed.read(|books| {
        let named: Vec<_> = books.terms.iter().map(|t| (t.buyer.as_str(), t.config_revision.as_str())).collect();
        assert_eq!(named, [("best", "rev-1"), ("other", "rev-1"), ("best", "rev-2")]);
        let terms_of = |lead: &str| books.terms(books.leads[lead].sale.terms_id).unwrap().terms["revision"].clone();
        assert_eq!((terms_of("l_2"), terms_of("l_5")), (Value::from("rev-1"), Value::from("rev-2")));
        // The index is not in a snapshot: books read back from one find the terms again.
        let restored = Books::from_snapshot(&serde_json::to_vec(books).unwrap()).unwrap();
        assert_eq!(restored.terms_in_force("rev-2", "best"), Some(2));
        assert_eq!(restored.terms_in_force("rev-1", "other"), Some(1));
    });
}

#[tokio::test]
async fn return_rates_follow_sales_and_approved_returns_and_are_rebuilt_by_replay_and_from_a_snapshot() {
    use crate::domain::expected_value::ReturnRate;
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = Ledger::open(dir.path(), JournalOptions::default()).unwrap();
    let lenient = buyer("best", ReturnPolicy { rate_cap_percent: Decimal::ONE_HUNDRED, ..ReturnPolicy::default() });
    // Any return is over a 0% cap: each waits for the operator.
    let strict = buyer("other", ReturnPolicy { rate_cap_percent: Decimal::ZERO, ..ReturnPolicy::default() });
    for i in 0..4 {
        sell(&ledger, sale(&format!("l_b{i}"), "best", 1000, 900, at(1))).await.unwrap();
    }
    for i in 0..3 {
        sell(&ledger, sale(&format!("l_o{i}"), "other", 1000, 900, at(1))).await.unwrap();
    }
    assert_eq!(
        ledger.file_return(&lenient, request("l_b0", "duplicate"), at(2)).await.unwrap().status,
        ReturnStatus::Approved
    );
    let approve = ledger.file_return(&strict, request("l_o0", "duplicate"), at(2)).await.unwrap();
    let reject = ledger.file_return(&strict, request("l_o1", "duplicate"), at(2)).await.unwrap();
    let rates = |books: &Books| {
        let acme = books.return_rates.seller("acme");
        (acme.rate("best", 30, at(5)), acme.rate("other", 30, at(5)))
    };
    assert_eq!(ledger.read(rates), (ReturnRate::new(4, 1), ReturnRate::new(3, 0)), "pending returns do not count");
    ledger.decide_return(&approve.return_id, true, None, at(3)).await.unwrap();
    ledger.decide_return(&reject.return_id, false, None, at(3)).await.unwrap();
    let expected = (ReturnRate::new(4, 1), ReturnRate::new(3, 1));
    assert_eq!(ledger.read(rates), expected, "an operator's approval counts, a rejection does not");
    ledger.close().await.unwrap();
    drop(ledger);

    let (replayed, _) = Ledger::open(dir.path(), JournalOptions::default()).unwrap();
    assert_eq!(replayed.read(rates), expected, "replay rebuilds them");
    let snapshot = replayed.read(|books| serde_json::to_vec(books).unwrap());
    assert_eq!(rates(&Books::from_snapshot(&snapshot).unwrap()), expected, "so does a snapshot");
}

/// Writes a journal of raw payloads (an optional snapshot first) and opens a ledger on it.
fn open_written(snapshot: Option<Vec<u8>>, records: &[&str]) -> Result<(Ledger, Recovery), LedgerError> {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (journal, _) = Journal::open(dir.path(), JournalOptions::default()).unwrap();
        if let Some(snapshot) = snapshot {
            journal.snapshot(snapshot).await.unwrap();
        }
        for record in records {
            journal.append(record.as_bytes().to_vec()).await.unwrap();
        }
        journal.close().await.unwrap();
    });
    Ledger::open(dir.path(), JournalOptions::default())
}

fn replay_error(result: Result<(Ledger, Recovery), LedgerError>) -> (usize, String) {
    match result {
        Err(LedgerError::Replay { index, problem, .. }) => (index, problem),
        Err(other) => panic!("not a replay error: {other}"),
        Ok(_) => panic!("replayed"),
    }
}

#[test]
fn a_snapshot_whose_return_has_lost_its_lead_is_a_replay_error_not_a_panic() {
    // Found while writing the ledger fuzz target: replaying a decision on such a return indexed the lead.
    let mut books = Books::default();
    let terms = Terms { terms_id: 0, buyer: "best".into(), config_revision: "rev-1".into(), terms: Value::Null };
    books.apply(Entry::Terms { terms }).unwrap();
    books.apply(Entry::Sale { transaction_id: "t_1".into(), sale: sale("l_1", "best", 1250, 1125, at(1)) }).unwrap();
    let filed = Return {
        return_id: "r_1".into(),
        lead_id: "l_1".into(),
        buyer: "best".into(),
        reason: "disconnected".into(),
        note: None,
        status: ReturnStatus::PendingReview,
        decision_reason: DecisionReason::AutoApproved,
        created_at: at(2),
        decided_at: None,
        decision_note: None,
        credit: Money::ZERO,
        clawback: Money::ZERO,
        transaction_id: None,
    };
    books.apply(Entry::Return { filed }).unwrap();
    books.leads.clear();
    let decision = r#"{"entry":"decision","decision":{"return_id":"r_1","approve":true,"note":null,
        "at":"2026-11-03T12:00:00Z","transaction_id":"t_2"}}"#;
    let (index, problem) = replay_error(open_written(Some(serde_json::to_vec(&books).unwrap()), &[decision]));
    assert_eq!(index, 0);
    assert!(problem.contains("snapshot") && problem.contains("l_1"), "{problem}");
}

#[test]
fn an_amount_beyond_what_the_ledger_can_sum_exactly_is_a_replay_error() {
    // Found by the ledger fuzz target: 28-digit amounts made the sums round, so the accounts no longer
    // summed to zero.
    let huge = r#"{"entry":"sale","transaction_id":"t_1","sale":{"lead_id":"l_1","ping_id":"p_1","campaign":"auto",
        "seller":"acme","buyer":"best","source":null,"price":"1.00","payout":"-1770860613586546005142666807.1",
        "at":"2026-11-01T12:00:00Z","lead":{},"terms_id":0}}"#;
    let fine = r#"{"entry":"sale","transaction_id":"t_0","sale":{"lead_id":"l_0","ping_id":"p_0","campaign":"auto",
        "seller":"acme","buyer":"best","source":null,"price":"12.50","payout":"11.25",
        "at":"2026-11-01T12:00:00Z","lead":{},"terms_id":0}}"#;
    let terms = r#"{"entry":"terms","terms":{"terms_id":0,"buyer":"best","config_revision":"rev-1","terms":null}}"#;
    let (index, problem) = replay_error(open_written(None, &[terms, fine, huge]));
    assert_eq!(index, 3);
    assert!(problem.contains("more than 15 digits"), "{problem}");
}
