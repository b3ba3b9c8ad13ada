//! The console's buyers: the list with pause and resume, and one buyer's page with its eligibility
//! checklist, caps, health, terms in force, latest deliveries and a deposit form.

use askama::Template;
use chrono::Utc;
use hyper::StatusCode;
use serde_json::Value;

use crate::domain::money::Money;
use crate::gates::is_open;
use crate::ids::new_id;
use crate::ops;
use crate::ops::returns::BuyerLead;
use crate::web::page::{self, shown, Chrome, PageError, WebResponse};
use crate::web::Ctx;

/// `/console/buyers…`; `rest` is the path after `buyers`.
pub async fn route(ctx: &Ctx<'_>, rest: &[&str]) -> Result<WebResponse, PageError> {
    match (rest, ctx.form.is_some()) {
        ([], false) => list(ctx).await,
        ([id], false) => one(ctx, id).await,
        ([id, action @ ("pause" | "resume")], true) => {
            ops::buyers::operator_pause(ctx.engine, id, *action == "pause").await?;
            let done = if *action == "pause" { "paused" } else { "resumed" };
            let back = match ctx.form().get("back") {
                Some("list") => format!("/console/buyers?done={done}"),
                _ => format!("/console/buyers/{}?done={done}", page::path_segment(id)),
            };
            Ok(page::redirect(&back))
        }
        ([id, "deposits"], true) => {
            let form = ctx.form();
            let amount =
                form.text("amount").ok_or_else(|| PageError::bad_request("Enter an amount, such as 500.00."))?;
            let amount = Money::parse_text(amount)
                .map_err(|why| PageError::bad_request(format!("The amount {why}; write it like 500.00.")))?;
            let reference = form.text("reference").map(str::to_owned);
            // The form's own key: the same form sent twice (a double click, a resubmission) deposits once.
            let key = form.text("idempotency_key").map(str::to_owned);
            ops::buyers::deposit(ctx.engine, id, amount, reference, key).await.map_err(|error| match error {
                ops::OpError::KeyReused(_) => PageError::bad_request(
                    "This form already recorded a deposit with another amount or reference; open the buyer's page \
                     again to record a new one.",
                ),
                other => other.into(),
            })?;
            Ok(page::redirect(&format!("/console/buyers/{}?done=deposited", page::path_segment(id))))
        }
        _ => Err(PageError::not_found()),
    }
}

/// A buyer's row or page header, from the operator's buyer object (the JSON API's figures).
struct BuyerSummary {
    id: String,
    state: String,
    reason: String,
    active: bool,
    billing: String,
    balance: String,
    held: String,
    available: String,
    credit_limit: Option<String>,
    timeout_rate: String,
    error_rate: String,
    acceptance_rate: String,
    p50: String,
    p99: String,
    samples: String,
    limits: Vec<Limit>,
}

/// One cap or budget: used, held and left of its limit.
struct Limit {
    name: String,
    limit: String,
    used: String,
    held: String,
    remaining: String,
    exhausted: bool,
}

fn rate(value: &Value) -> String {
    value.as_f64().map_or_else(|| "—".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn ms(value: &Value) -> String {
    value.as_f64().map_or_else(|| "—".to_owned(), |ms| format!("{ms:.1} ms"))
}

fn summary(view: &Value) -> BuyerSummary {
    let health = &view["health"];
    let mut limits = Vec::new();
    for (kind, object) in [("cap", &view["caps"]), ("budget", &view["budgets"])] {
        for (period, figures) in object.as_object().into_iter().flatten() {
            let remaining = &figures["remaining"];
            limits.push(Limit {
                name: format!("{period} {kind}"),
                limit: shown(&figures["limit"]),
                used: shown(&figures["used"]),
                held: shown(&figures["held"]),
                remaining: shown(remaining),
                exhausted: remaining.as_u64() == Some(0) || remaining.as_str().is_some_and(|m| m == "0.00"),
            });
        }
    }
    BuyerSummary {
        id: shown(&view["id"]),
        state: shown(&view["state"]),
        reason: shown(&view["state_reason"]),
        active: view["state"] == "active",
        billing: shown(&view["billing"]),
        balance: shown(&view["balance"]),
        held: shown(&view["held"]),
        available: shown(&view["available"]),
        credit_limit: view.get("credit_limit").map(shown),
        timeout_rate: rate(&health["timeout_rate"]),
        error_rate: rate(&health["error_rate"]),
        acceptance_rate: rate(&health["acceptance_rate"]),
        p50: ms(&health["p50_ms"]),
        p99: ms(&health["p99_ms"]),
        samples: shown(&health["samples"]),
        limits,
    }
}

#[derive(Template)]
#[template(path = "console/buyers.html")]
struct List {
    page: Chrome,
    buyers: Vec<BuyerSummary>,
}

async fn list(ctx: &Ctx<'_>) -> Result<WebResponse, PageError> {
    let buyers = ops::buyers::all(ctx.engine).await?.iter().map(summary).collect();
    let page = Chrome::for_session(ctx.session, "Buyers", ctx.path).notice(page::notice_of(&ctx.query));
    Ok(page::html(StatusCode::OK, &List { page, buyers }))
}

/// One line of the eligibility checklist.
struct Check {
    label: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/buyer.html")]
struct One {
    page: Chrome,
    buyer: BuyerSummary,
    checks: Vec<Check>,
    terms: String,
    leads: Vec<BuyerLead>,
    statement_href: String,
    /// The deposit form's `Idempotency-Key`, new with every rendering of the page.
    deposit_key: String,
}

async fn one(ctx: &Ctx<'_>, id: &str) -> Result<WebResponse, PageError> {
    let (buyer, _) = ops::buyers::find(ctx.engine, id)?;
    let view = ops::buyers::one(ctx.engine, id).await?;
    let summary = summary(&view);
    let config = ctx.engine.config();
    let floor = buyer.campaigns.iter().filter_map(|c| config.campaign(c)).map(|c| c.floor).min();
    let available = view["available"].as_str().and_then(|text| Money::parse_text(text).ok());
    let funded = match (available, floor) {
        (Some(available), Some(floor)) => available >= floor,
        _ => false,
    };
    let schedule = buyer.filters.schedule.as_ref();
    let in_schedule = schedule.is_none_or(|s| is_open(s, Utc::now().with_timezone(&s.timezone).naive_local()));
    let exhausted: Vec<&str> = summary.limits.iter().filter(|l| l.exhausted).map(|l| l.name.as_str()).collect();
    let healthy = !matches!(summary.state.as_str(), "sla_paused" | "probing");
    let checks = vec![
        Check {
            label: "Active",
            ok: summary.active,
            detail: if summary.active {
                "receives pings".into()
            } else {
                format!("{} by {}", summary.state, summary.reason)
            },
        },
        Check {
            label: "Funded",
            ok: funded,
            detail: format!(
                "available {} against the lowest floor of its campaigns, {}",
                summary.available,
                floor.map_or_else(|| "none".to_owned(), |f| f.to_string())
            ),
        },
        Check {
            label: "In schedule now",
            ok: in_schedule,
            detail: schedule.map_or_else(
                || "no schedule: always open".to_owned(),
                |s| format!("{} to {} ({})", s.open.format("%H:%M"), s.close.format("%H:%M"), s.timezone),
            ),
        },
        Check {
            label: "Caps left",
            ok: exhausted.is_empty(),
            detail: if exhausted.is_empty() {
                "every cap and budget has room".into()
            } else {
                format!("used up: {}", exhausted.join(", "))
            },
        },
        Check {
            label: "Healthy",
            ok: healthy,
            detail: format!("timeout rate {}, error rate {}", summary.timeout_rate, summary.error_rate),
        },
    ];
    let terms = serde_json::to_string_pretty(&buyer.terms()).unwrap_or_default();
    let leads = ops::returns::leads_of_buyer(ctx.engine, &buyer, None, 20);
    let page = Chrome::for_session(ctx.session, format!("Buyer {id}"), ctx.path).notice(page::notice_of(&ctx.query));
    let statement_href = format!("/console/ledger/buyer:{}", page::path_segment(id));
    let deposit_key = new_id("dk_");
    Ok(page::html(StatusCode::OK, &One { page, buyer: summary, checks, terms, leads, statement_href, deposit_key }))
}
