//! Statements as pages and CSV, for the console's ledger and both portals: the same `ops::books::statement`
//! as the JSON API, over the same `[from, to)` period.

use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use hyper::StatusCode;

use super::csv::{Cell, Csv};
use super::page::{self, Chrome, PageError, WebResponse};
use super::Ctx;
use crate::http::query::Query;
use crate::ledger::statement::Statement;
use crate::ops;

/// The period of a page's query: `from` and `to` as RFC 3339 times (as the JSON API takes them), or as
/// days from the page's date pickers — `from` a day's start, `to` the end of the day named (through that
/// day), both UTC. Missing ones take the API's defaults.
pub fn period(query: &Query) -> Result<(DateTime<Utc>, DateTime<Utc>), PageError> {
    let read = |key: &str, day_end: bool| -> Result<Option<DateTime<Utc>>, PageError> {
        let Some(text) = query.get(key).map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let day = if day_end { day.succ_opt().unwrap_or(day) } else { day };
            return Ok(Some(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()));
        }
        Ok(query.time(key)?)
    };
    Ok(ops::period(read("from", false)?, read("to", true)?)?)
}

/// A `since` filter (as `GET /v1/buyer/leads` and `GET /v1/seller/returns` take it): RFC 3339, or a day
/// (its start, UTC) as the pages' date pickers send it.
pub fn since(query: &Query) -> Result<Option<DateTime<Utc>>, PageError> {
    match query.get("since").map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => Ok(Some(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())),
            Err(_) => Ok(query.time("since")?),
        },
        None => Ok(None),
    }
}

/// The query string of a period, exact (RFC 3339), for the download link of the page showing it.
pub fn period_query(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let encode = |t: DateTime<Utc>| crate::time::rfc3339(t).replace(':', "%3A").replace('+', "%2B");
    format!("from={}&to={}", encode(from), encode(to))
}

/// The days a period's pickers show: its first day, and the last day it reaches.
pub fn picker_days(from: DateTime<Utc>, to: DateTime<Utc>) -> (String, String) {
    let last = (to - chrono::Duration::milliseconds(1)).max(from);
    (from.format("%Y-%m-%d").to_string(), last.format("%Y-%m-%d").to_string())
}

#[derive(Template)]
#[template(path = "statement.html")]
struct StatementPage {
    page: Chrome,
    statement: Statement,
    from_day: String,
    to_day: String,
    csv_href: String,
}

/// The statement page of `account`; `csv_path` is where its download is.
pub async fn page(ctx: &Ctx<'_>, account: &str, title: String, csv_path: &str) -> Result<WebResponse, PageError> {
    let (from, to) = period(&ctx.query)?;
    let statement = ops::books::statement(ctx.engine, account, from, to);
    let (from_day, to_day) = picker_days(from, to);
    let csv_href = format!("{csv_path}?{}", period_query(from, to));
    let page = Chrome::for_session(ctx.session, title, ctx.path);
    Ok(page::html(StatusCode::OK, &StatementPage { page, statement, from_day, to_day, csv_href }))
}

/// The statement of `account` as CSV: an `opening_balance` row, every line, a `closing_balance` row.
pub async fn csv(ctx: &Ctx<'_>, account: &str) -> Result<WebResponse, PageError> {
    let (from, to) = period(&ctx.query)?;
    let statement = ops::books::statement(ctx.engine, account, from, to);
    let mut csv = Csv::new(&["at", "kind", "transaction_id", "lead_id", "amount", "balance"]);
    let opening = statement.opening_balance.to_string();
    csv.row([
        Cell::Value(&statement.from),
        Cell::Value("opening_balance"),
        Cell::Value(""),
        Cell::Value(""),
        Cell::Value(""),
        Cell::Value(&opening),
    ]);
    for line in &statement.lines {
        let (amount, balance) = (line.amount.to_string(), line.balance.to_string());
        csv.row([
            Cell::Value(&line.at),
            Cell::Value(line.kind),
            Cell::Value(&line.transaction_id),
            Cell::Value(line.lead_id.as_deref().unwrap_or("")),
            Cell::Value(&amount),
            Cell::Value(&balance),
        ]);
    }
    let closing = statement.closing_balance.to_string();
    csv.row([
        Cell::Value(&statement.to),
        Cell::Value("closing_balance"),
        Cell::Value(""),
        Cell::Value(""),
        Cell::Value(""),
        Cell::Value(&closing),
    ]);
    let name = format!("statement-{}-{}.csv", account.replace(':', "-"), from.format("%Y%m%d"));
    Ok(page::csv(&name, csv.finish()))
}
