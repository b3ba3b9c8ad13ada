//! The buyer portal: balance and available funds, leads with return buttons while returnable, the return
//! form showing the policy first and the answer after, returns, the statement, and self pause / resume.

use askama::Template;
use hyper::StatusCode;

use crate::buyers::BuyerState;
use crate::config::Buyer;
use crate::ledger::Return;
use crate::ops;
use crate::ops::returns::{BuyerLead, MAX_NOTE_CHARS};
use crate::web::csv::{Cell, Csv};
use crate::web::page::{self, Chrome, PageError, WebResponse};
use crate::web::{statement, Ctx};

/// Leads the overview lists.
const OVERVIEW_LEADS: usize = 10;

/// `/portal…` for buyer `id`; `rest` is the path after `portal`.
pub async fn route(ctx: &Ctx<'_>, id: &str, rest: &[&str]) -> Result<WebResponse, PageError> {
    // The session's buyer, as the config in force has it (the session check made sure it is there).
    let (buyer, state) = ops::buyers::find(ctx.engine, id).map_err(|_| PageError::not_found())?;
    match (rest, ctx.form.is_some()) {
        ([], false) => overview(ctx, &buyer, &state).await,
        ([action @ ("pause" | "resume")], true) => {
            ops::buyers::self_pause(ctx.engine, &buyer, &state, *action == "pause").await?;
            Ok(page::redirect(if *action == "pause" { "/portal?done=paused" } else { "/portal?done=resumed" }))
        }
        (["leads"], false) => leads(ctx, &buyer).await,
        (["leads.csv"], false) => leads_csv(ctx, &buyer).await,
        (["leads", lead_id, "return"], false) => return_form(ctx, &buyer, lead_id).await,
        (["leads", lead_id, "return"], true) => file_return(ctx, &buyer, lead_id).await,
        (["returns"], false) => Ok(returns(ctx, &buyer).await),
        (["returns.csv"], false) => Ok(returns_csv(ctx, &buyer).await),
        (["returns", return_id], false) => one_return(ctx, &buyer, return_id).await,
        (["statement"], false) => {
            statement::page(ctx, &state.account, "Statement".into(), "/portal/statement.csv").await
        }
        (["statement.csv"], false) => statement::csv(ctx, &state.account).await,
        _ => Err(PageError::not_found()),
    }
}

#[derive(Template)]
#[template(path = "portal/buyer.html")]
struct Overview {
    page: Chrome,
    balance: String,
    held: String,
    available: String,
    billing: String,
    credit_limit: Option<String>,
    state: String,
    state_reason: String,
    self_pause: bool,
    paused_by_self: bool,
    leads: Vec<BuyerLead>,
}

async fn overview(ctx: &Ctx<'_>, buyer: &Buyer, state: &BuyerState) -> Result<WebResponse, PageError> {
    let money = ops::buyers::money(ctx.engine, buyer, state).await?;
    let status = ops::buyers::status(ctx.engine, buyer, state).await?;
    let text = |value: Option<&serde_json::Value>| value.map(page::shown).unwrap_or_default();
    let leads = ops::returns::leads_of_buyer(ctx.engine, buyer, None, OVERVIEW_LEADS);
    let overview = Overview {
        page: Chrome::for_session(ctx.session, format!("{} — overview", buyer.id), ctx.path)
            .notice(page::notice_of(&ctx.query)),
        balance: text(money.get("balance")),
        held: text(money.get("held")),
        available: text(money.get("available")),
        billing: text(money.get("billing")),
        credit_limit: money.get("credit_limit").map(page::shown),
        state: text(status.get("state")),
        state_reason: text(status.get("state_reason")),
        self_pause: buyer.self_pause,
        paused_by_self: status["state_reason"] == "buyer",
        leads,
    };
    Ok(page::html(StatusCode::OK, &overview))
}

#[derive(Template)]
#[template(path = "portal/leads.html")]
struct Leads {
    page: Chrome,
    leads: Vec<BuyerLead>,
    since: String,
    limit: usize,
    csv_href: String,
}

/// The `since` and `limit` of `GET /v1/buyer/leads`, with its rules.
fn lead_filters(ctx: &Ctx<'_>) -> Result<(Option<chrono::DateTime<chrono::Utc>>, usize), PageError> {
    Ok((statement::since(&ctx.query)?, ctx.query.limit("limit", 100, 1000)?))
}

async fn leads(ctx: &Ctx<'_>, buyer: &Buyer) -> Result<WebResponse, PageError> {
    let (since, limit) = lead_filters(ctx)?;
    let leads = ops::returns::leads_of_buyer(ctx.engine, buyer, since, limit);
    let mut csv_href = format!("/portal/leads.csv?limit={limit}");
    if let Some(since) = since {
        csv_href.push_str(&format!("&since={}", crate::time::rfc3339(since).replace(':', "%3A")));
    }
    let since = since.map(|s| s.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let page = Chrome::for_session(ctx.session, "Leads", ctx.path);
    Ok(page::html(StatusCode::OK, &Leads { page, leads, since, limit, csv_href }))
}

/// The buyer's leads as CSV, with the filters of the JSON API (`since`, `limit`).
async fn leads_csv(ctx: &Ctx<'_>, buyer: &Buyer) -> Result<WebResponse, PageError> {
    let (since, limit) = lead_filters(ctx)?;
    let leads = ops::returns::leads_of_buyer(ctx.engine, buyer, since, limit);
    let mut csv = Csv::new(&["lead_id", "campaign", "price", "delivered_at", "returnable_until", "return_status"]);
    for lead in &leads {
        let price = lead.price.to_string();
        csv.row([
            Cell::Value(&lead.lead_id),
            Cell::Value(&lead.campaign),
            Cell::Value(&price),
            Cell::Value(&lead.delivered_at),
            Cell::Value(&lead.returnable_until),
            Cell::Value(lead.return_status.unwrap_or("")),
        ]);
    }
    Ok(page::csv(&format!("leads-{}.csv", buyer.id), csv.finish()))
}

#[derive(Template)]
#[template(path = "portal/return_form.html")]
struct ReturnForm {
    page: Chrome,
    lead: BuyerLead,
    enabled: bool,
    window_days: u32,
    reasons: Vec<String>,
    rate_cap_percent: String,
    policy_note: Option<String>,
    max_note: usize,
}

/// The return form of one of the buyer's leads: the policy first (window, reasons, note), then the form.
async fn return_form(ctx: &Ctx<'_>, buyer: &Buyer, lead_id: &str) -> Result<WebResponse, PageError> {
    let lead = ops::returns::lead_of_buyer(ctx.engine, buyer, lead_id)?;
    let policy = &buyer.returns;
    let form = ReturnForm {
        page: Chrome::for_session(ctx.session, format!("Return lead {lead_id}"), ctx.path),
        lead,
        enabled: policy.enabled,
        window_days: policy.window_days,
        reasons: policy.reasons.clone(),
        rate_cap_percent: policy.rate_cap_percent.to_string(),
        policy_note: policy.policy_note.clone(),
        max_note: MAX_NOTE_CHARS,
    };
    Ok(page::html(StatusCode::OK, &form))
}

/// Files the return as `POST /v1/returns` does, then shows its answer.
async fn file_return(ctx: &Ctx<'_>, buyer: &Buyer, lead_id: &str) -> Result<WebResponse, PageError> {
    let form = ctx.form();
    let reason = form.text("reason").ok_or_else(|| PageError::bad_request("Choose a reason for the return."))?;
    let filed = ops::returns::file(ctx.engine, buyer, lead_id.to_owned(), reason, form.text("note")).await?;
    Ok(page::redirect(&format!("/portal/returns/{}", page::path_segment(&filed.return_id))))
}

/// A return as the buyer's pages show it, with a sentence saying where it stands.
struct ReturnLine {
    filed: Return,
    answer: &'static str,
}

impl ReturnLine {
    fn of(filed: Return) -> ReturnLine {
        let answer = match filed.decision_reason.label() {
            "auto_approved" => "Approved: the price is credited back.",
            "operator_approved" => "Approved by the operator: the price is credited back.",
            "rate_cap_exceeded" => {
                "Waiting for review: your returns over the last 30 days are above the policy's rate cap."
            }
            "outside_window" => "Rejected: the lead is past the return window.",
            "reason_not_returnable" => "Rejected: the policy does not accept this reason.",
            "operator_rejected" => "Rejected by the operator.",
            _ => "",
        };
        ReturnLine { filed, answer }
    }
}

#[derive(Template)]
#[template(path = "portal/returns.html")]
struct Returns {
    page: Chrome,
    returns: Vec<ReturnLine>,
}

async fn returns(ctx: &Ctx<'_>, buyer: &Buyer) -> WebResponse {
    let returns = ops::returns::of_buyer(ctx.engine, &buyer.id).into_iter().map(ReturnLine::of).collect();
    page::html(StatusCode::OK, &Returns { page: Chrome::for_session(ctx.session, "Returns", ctx.path), returns })
}

/// The buyer's returns as CSV, every field of the JSON list.
async fn returns_csv(ctx: &Ctx<'_>, buyer: &Buyer) -> WebResponse {
    let returns = ops::returns::of_buyer(ctx.engine, &buyer.id);
    let mut csv = Csv::new(&[
        "return_id",
        "lead_id",
        "status",
        "decision_reason",
        "credit",
        "reason",
        "note",
        "created_at",
        "decided_at",
    ]);
    for filed in &returns {
        let (credit, created) = (filed.credit.to_string(), crate::time::rfc3339(filed.created_at));
        let decided = filed.decided_at.map(crate::time::rfc3339).unwrap_or_default();
        csv.row([
            Cell::Value(&filed.return_id),
            Cell::Value(&filed.lead_id),
            Cell::Value(filed.status.label()),
            Cell::Value(filed.decision_reason.label()),
            Cell::Value(&credit),
            Cell::Value(&filed.reason),
            Cell::Text(filed.note.as_deref().unwrap_or("")),
            Cell::Value(&created),
            Cell::Value(&decided),
        ]);
    }
    page::csv(&format!("returns-{}.csv", buyer.id), csv.finish())
}

#[derive(Template)]
#[template(path = "portal/return.html")]
struct OneReturn {
    page: Chrome,
    line: ReturnLine,
}

async fn one_return(ctx: &Ctx<'_>, buyer: &Buyer, return_id: &str) -> Result<WebResponse, PageError> {
    let filed = ops::returns::one_of_buyer(ctx.engine, &buyer.id, return_id)?;
    let page = Chrome::for_session(ctx.session, format!("Return {return_id}"), ctx.path);
    Ok(page::html(StatusCode::OK, &OneReturn { page, line: ReturnLine::of(filed) }))
}
