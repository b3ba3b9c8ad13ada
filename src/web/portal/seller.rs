//! The seller portal: balance, payouts, the statement, and the returns on its leads by reason and by source
//! (the source-quality view). It never names a buyer.

use std::collections::BTreeMap;

use askama::Template;
use hyper::StatusCode;

use crate::domain::money::Money;
use crate::ledger::seller_account;
use crate::ops;
use crate::ops::books::PayoutLine;
use crate::ops::returns::SellerReturn;
use crate::web::csv::{Cell, Csv};
use crate::web::page::{self, Chrome, PageError, WebResponse};
use crate::web::statement::{period, picker_days};
use crate::web::{statement, Ctx};

/// `/portal…` for seller `id`; `rest` is the path after `portal`.
pub async fn route(ctx: &Ctx<'_>, id: &str, rest: &[&str]) -> Result<WebResponse, PageError> {
    let account = seller_account(id);
    match (rest, ctx.form.is_some()) {
        ([], false) => overview(ctx, id).await,
        (["returns"], false) => returns(ctx, id).await,
        (["returns.csv"], false) => returns_csv(ctx, id).await,
        (["statement"], false) => statement::page(ctx, &account, "Statement".into(), "/portal/statement.csv").await,
        (["statement.csv"], false) => statement::csv(ctx, &account).await,
        _ => Err(PageError::not_found()),
    }
}

/// Returns grouped by one key: how many were filed, approved, pending and rejected, and what was clawed back.
#[derive(Default)]
struct Group {
    key: String,
    filed: u64,
    approved: u64,
    pending: u64,
    rejected: u64,
    clawback: Money,
}

fn group_by(returns: &[SellerReturn], key: impl Fn(&SellerReturn) -> String) -> Vec<Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for filed in returns {
        let k = key(filed);
        let group = groups.entry(k.clone()).or_insert_with(|| Group { key: k, ..Group::default() });
        group.filed += 1;
        match filed.status {
            "approved" => group.approved += 1,
            "pending_review" => group.pending += 1,
            _ => group.rejected += 1,
        }
        group.clawback += filed.clawback;
    }
    groups.into_values().collect()
}

/// One source's sales and returns over the period (the report's source rows for this seller).
struct SourceQuality {
    source: String,
    sold: u64,
    gross: String,
    returns: u64,
    return_rate: String,
}

#[derive(Template)]
#[template(path = "portal/seller.html")]
struct Overview {
    page: Chrome,
    balance: String,
    payouts: Vec<PayoutLine>,
    by_reason: Vec<Group>,
    by_source: Vec<Group>,
    quality: Vec<SourceQuality>,
    from: String,
    to: String,
    from_day: String,
    to_day: String,
}

fn source_name(source: &Option<String>) -> String {
    source.clone().unwrap_or_else(|| "(no source)".to_owned())
}

async fn overview(ctx: &Ctx<'_>, id: &str) -> Result<WebResponse, PageError> {
    let (from, to) = period(&ctx.query)?;
    let balance = ops::books::balance(ctx.engine, &seller_account(id));
    let payouts = ops::books::payouts_of_seller(ctx.engine, id);
    let filed = ops::returns::of_seller(ctx.engine, id, None);
    // The report's figures for this seller alone: its sources, never its buyers.
    let report = ops::books::report(ctx.engine, from, to);
    let quality = report
        .sellers
        .iter()
        .filter(|row| row.row.id.as_deref() == Some(id))
        .flat_map(|row| &row.sources)
        .map(|source| SourceQuality {
            source: source_name(&source.id),
            sold: source.sold,
            gross: source.gross.to_string(),
            returns: source.returns.count,
            return_rate: format!("{:.1}%", source.return_rate * 100.0),
        })
        .collect();
    let (from_day, to_day) = picker_days(from, to);
    let overview = Overview {
        page: Chrome::for_session(ctx.session, format!("{id} — overview"), ctx.path),
        balance: balance.to_string(),
        payouts,
        by_reason: group_by(&filed, |r| r.reason.clone()),
        by_source: group_by(&filed, |r| source_name(&r.source)),
        quality,
        from: crate::time::rfc3339(from),
        to: crate::time::rfc3339(to),
        from_day,
        to_day,
    };
    Ok(page::html(StatusCode::OK, &overview))
}

#[derive(Template)]
#[template(path = "portal/seller_returns.html")]
struct Returns {
    page: Chrome,
    returns: Vec<SellerReturn>,
    since: String,
    csv_href: String,
}

async fn returns(ctx: &Ctx<'_>, id: &str) -> Result<WebResponse, PageError> {
    let since = statement::since(&ctx.query)?;
    let returns = ops::returns::of_seller(ctx.engine, id, since);
    let csv_href = match since {
        Some(since) => format!("/portal/returns.csv?since={}", crate::time::rfc3339(since).replace(':', "%3A")),
        None => "/portal/returns.csv".to_owned(),
    };
    let since = since.map(|s| s.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let page = Chrome::for_session(ctx.session, "Returns on your leads", ctx.path);
    Ok(page::html(StatusCode::OK, &Returns { page, returns, since, csv_href }))
}

async fn returns_csv(ctx: &Ctx<'_>, id: &str) -> Result<WebResponse, PageError> {
    let returns = ops::returns::of_seller(ctx.engine, id, statement::since(&ctx.query)?);
    let mut csv = Csv::new(&[
        "return_id",
        "lead_id",
        "ping_id",
        "source",
        "campaign",
        "reason",
        "status",
        "clawback",
        "created_at",
    ]);
    for filed in &returns {
        let clawback = filed.clawback.to_string();
        csv.row([
            Cell::Value(&filed.return_id),
            Cell::Value(&filed.lead_id),
            Cell::Value(&filed.ping_id),
            Cell::Text(filed.source.as_deref().unwrap_or("")),
            Cell::Value(&filed.campaign),
            Cell::Value(&filed.reason),
            Cell::Value(filed.status),
            Cell::Value(&clawback),
            Cell::Value(&filed.created_at),
        ]);
    }
    Ok(page::csv(&format!("returns-{id}.csv"), csv.finish()))
}
