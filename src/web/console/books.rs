//! The console's books: the report (P&L by campaign, seller and source, buyer) with its download, the
//! delivery record of a lead, and the ledger's accounts with each account's statement.

use askama::Template;
use hyper::StatusCode;
use serde_json::Value;

use crate::domain::money::Money;
use crate::ledger::report::{Report, Returns, Row, SourceRow};
use crate::ops;
use crate::web::csv::{Cell, Csv};
use crate::web::page::{self, shown, Chrome, PageError, WebResponse};
use crate::web::statement::{self, period, period_query, picker_days};
use crate::web::Ctx;

/// `/console/report…`, `/console/leads…`, `/console/ledger…`; `rest` is the whole path after `console`.
pub async fn route(ctx: &Ctx<'_>, rest: &[&str]) -> Result<WebResponse, PageError> {
    if ctx.form.is_some() {
        return Err(PageError::not_found());
    }
    match rest {
        ["report"] => report_page(ctx).await,
        ["report.csv"] => report_csv(ctx).await,
        ["leads"] => Ok(lead_lookup(ctx)),
        ["leads", lead_id] => lead(ctx, lead_id).await,
        ["ledger"] => Ok(accounts(ctx).await),
        ["ledger", account] => {
            let csv_path = format!("/console/ledger/{account}/statement.csv");
            statement::page(ctx, account, format!("Statement of {account}"), &csv_path).await
        }
        ["ledger", account, "statement.csv"] => statement::csv(ctx, account).await,
        _ => Err(PageError::not_found()),
    }
}

/// One row of the report as the page shows it.
struct ReportLine {
    id: String,
    sold: u64,
    gross: String,
    payouts: String,
    margin: String,
    returns: String,
    returned: String,
    by_reason: String,
    net: String,
    return_rate: String,
}

fn by_reason(returns: &Returns) -> String {
    returns.by_reason.iter().map(|(reason, n)| format!("{reason} {n}")).collect::<Vec<_>>().join(", ")
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn line(row: &Row, return_rate: Option<f64>) -> ReportLine {
    ReportLine {
        id: row.id.clone().unwrap_or_else(|| "(none)".into()),
        sold: row.sold,
        gross: row.gross.to_string(),
        payouts: row.payouts.to_string(),
        margin: row.margin.to_string(),
        returns: row.returns.count.to_string(),
        returned: row.returns.amount.to_string(),
        by_reason: by_reason(&row.returns),
        net: row.net.to_string(),
        return_rate: return_rate.map_or_else(|| "—".into(), percent),
    }
}

fn source_line(source: &SourceRow) -> ReportLine {
    ReportLine {
        id: source.id.clone().unwrap_or_else(|| "(none)".into()),
        sold: source.sold,
        gross: source.gross.to_string(),
        payouts: "—".into(),
        margin: "—".into(),
        returns: source.returns.count.to_string(),
        returned: source.returns.amount.to_string(),
        by_reason: by_reason(&source.returns),
        net: "—".into(),
        return_rate: percent(source.return_rate),
    }
}

/// The campaigns' rows summed: every sale belongs to exactly one campaign.
fn total_line(rows: &[Row]) -> ReportLine {
    let mut returns = Returns::default();
    let (mut sold, mut gross, mut payouts, mut margin, mut net) =
        (0, Money::ZERO, Money::ZERO, Money::ZERO, Money::ZERO);
    for row in rows {
        sold += row.sold;
        gross += row.gross;
        payouts += row.payouts;
        margin += row.margin;
        net += row.net;
        returns.count += row.returns.count;
        returns.amount += row.returns.amount;
        for (reason, n) in &row.returns.by_reason {
            *returns.by_reason.entry(reason.clone()).or_default() += n;
        }
    }
    ReportLine {
        id: "All campaigns".into(),
        sold,
        gross: gross.to_string(),
        payouts: payouts.to_string(),
        margin: margin.to_string(),
        returns: returns.count.to_string(),
        returned: returns.amount.to_string(),
        by_reason: by_reason(&returns),
        net: net.to_string(),
        return_rate: "—".into(),
    }
}

/// A seller's line with its sources' lines.
struct SellerLines {
    seller: ReportLine,
    sources: Vec<ReportLine>,
}

#[derive(Template)]
#[template(path = "console/report.html")]
struct ReportPage {
    page: Chrome,
    from: String,
    to: String,
    from_day: String,
    to_day: String,
    csv_href: String,
    campaigns: Vec<ReportLine>,
    sellers: Vec<SellerLines>,
    buyers: Vec<ReportLine>,
    total: ReportLine,
}

async fn report_page(ctx: &Ctx<'_>) -> Result<WebResponse, PageError> {
    let (from, to) = period(&ctx.query)?;
    let report = ops::books::report(ctx.engine, from, to);
    let (from_day, to_day) = picker_days(from, to);
    let sellers = report
        .sellers
        .iter()
        .map(|s| SellerLines {
            seller: line(&s.row, Some(s.return_rate)),
            sources: s.sources.iter().map(source_line).collect(),
        })
        .collect();
    let page = ReportPage {
        page: Chrome::for_session(ctx.session, "Report", ctx.path),
        from: crate::time::rfc3339(from),
        to: crate::time::rfc3339(to),
        from_day,
        to_day,
        csv_href: format!("/console/report.csv?{}", period_query(from, to)),
        campaigns: report.campaigns.iter().map(|row| line(row, None)).collect(),
        sellers,
        buyers: report.buyers.iter().map(|row| line(row, None)).collect(),
        total: total_line(&report.campaigns),
    };
    Ok(page::html(StatusCode::OK, &page))
}

const REPORT_COLUMNS: [&str; 16] = [
    "section",
    "id",
    "seller",
    "sold",
    "gross",
    "payouts",
    "margin",
    "returns_count",
    "returns_amount",
    "returns_clawback",
    "net",
    "net_payouts",
    "net_margin",
    "return_rate",
    "by_reason",
    "period",
];

fn report_row(csv: &mut Csv, section: &str, seller: &str, row: &Row, return_rate: Option<f64>, period: &str) {
    let money = [
        row.gross,
        row.payouts,
        row.margin,
        row.returns.amount,
        row.returns.clawback,
        row.net,
        row.net_payouts,
        row.net_margin,
    ]
    .map(|m| m.to_string());
    let (sold, count) = (row.sold.to_string(), row.returns.count.to_string());
    let rate = return_rate.map(|r| r.to_string()).unwrap_or_default();
    let reasons = by_reason(&row.returns);
    csv.row([
        Cell::Value(section),
        Cell::Value(row.id.as_deref().unwrap_or("")),
        Cell::Value(seller),
        Cell::Value(&sold),
        Cell::Value(&money[0]),
        Cell::Value(&money[1]),
        Cell::Value(&money[2]),
        Cell::Value(&count),
        Cell::Value(&money[3]),
        Cell::Value(&money[4]),
        Cell::Value(&money[5]),
        Cell::Value(&money[6]),
        Cell::Value(&money[7]),
        Cell::Value(&rate),
        Cell::Value(&reasons),
        Cell::Value(period),
    ]);
}

/// The report as CSV: one row per campaign, seller, seller's source and buyer, with the section it belongs
/// to; a source row carries its seller and only the figures the report has for sources.
async fn report_csv(ctx: &Ctx<'_>) -> Result<WebResponse, PageError> {
    let (from, to) = period(&ctx.query)?;
    let report: Report = ops::books::report(ctx.engine, from, to);
    let period = format!("{}/{}", crate::time::rfc3339(from), crate::time::rfc3339(to));
    let mut csv = Csv::new(&REPORT_COLUMNS);
    for row in &report.campaigns {
        report_row(&mut csv, "campaign", "", row, None, &period);
    }
    for seller in &report.sellers {
        report_row(&mut csv, "seller", "", &seller.row, Some(seller.return_rate), &period);
        let seller_id = seller.row.id.as_deref().unwrap_or("");
        for source in &seller.sources {
            let (sold, count) = (source.sold.to_string(), source.returns.count.to_string());
            let (gross, amount, clawback) =
                (source.gross.to_string(), source.returns.amount.to_string(), source.returns.clawback.to_string());
            let (rate, reasons) = (source.return_rate.to_string(), by_reason(&source.returns));
            csv.row([
                Cell::Value("source"),
                Cell::Text(source.id.as_deref().unwrap_or("")),
                Cell::Value(seller_id),
                Cell::Value(&sold),
                Cell::Value(&gross),
                Cell::Value(""),
                Cell::Value(""),
                Cell::Value(&count),
                Cell::Value(&amount),
                Cell::Value(&clawback),
                Cell::Value(""),
                Cell::Value(""),
                Cell::Value(""),
                Cell::Value(&rate),
                Cell::Value(&reasons),
                Cell::Value(&period),
            ]);
        }
    }
    for row in &report.buyers {
        report_row(&mut csv, "buyer", "", row, None, &period);
    }
    Ok(page::csv(&format!("report-{}-{}.csv", from.format("%Y%m%d"), to.format("%Y%m%d")), csv.finish()))
}

#[derive(Template)]
#[template(path = "console/lead.html")]
struct LeadPage {
    page: Chrome,
    record: Option<LeadRecord>,
}

struct LeadRecord {
    facts: Vec<(&'static str, String)>,
    buyer: String,
    ping_id: String,
    lead: String,
    terms: String,
    filed: Option<Vec<(&'static str, String)>>,
}

fn lead_lookup(ctx: &Ctx<'_>) -> WebResponse {
    if let Some(lead_id) = ctx.query.get("lead_id").map(str::trim).filter(|id| !id.is_empty()) {
        return page::redirect(&format!("/console/leads/{}", page::path_segment(lead_id)));
    }
    page::html(StatusCode::OK, &LeadPage { page: Chrome::for_session(ctx.session, "Leads", ctx.path), record: None })
}

/// `GET /console/leads/{lead_id}`: the delivery record of `GET /admin/leads/{lead_id}`.
async fn lead(ctx: &Ctx<'_>, lead_id: &str) -> Result<WebResponse, PageError> {
    let record: Value = ops::books::delivery_record(ctx.engine, lead_id)?;
    let facts = ["lead_id", "campaign", "seller", "source", "price", "payout", "delivered_at", "config_revision"]
        .map(|key| (key, shown(&record[key])))
        .to_vec();
    let filed = record["return"].as_object().map(|filed| {
        [
            "return_id",
            "status",
            "reason",
            "note",
            "decision_reason",
            "decision_note",
            "credit",
            "clawback",
            "created_at",
            "decided_at",
        ]
        .map(|key| (key, shown(filed.get(key).unwrap_or(&Value::Null))))
        .to_vec()
    });
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    let record = LeadRecord {
        facts,
        buyer: shown(&record["buyer"]),
        ping_id: shown(&record["ping_id"]),
        lead: pretty(&record["lead"]),
        terms: pretty(&record["terms"]),
        filed,
    };
    let page = Chrome::for_session(ctx.session, format!("Lead {lead_id}"), ctx.path);
    Ok(page::html(StatusCode::OK, &LeadPage { page, record: Some(record) }))
}

#[derive(Template)]
#[template(path = "console/ledger.html")]
struct Accounts {
    page: Chrome,
    accounts: Vec<(String, String)>,
    total: String,
}

async fn accounts(ctx: &Ctx<'_>) -> WebResponse {
    let balances = ops::books::accounts(ctx.engine);
    let total: Money = balances.iter().map(|(_, m)| *m).sum();
    let accounts = balances.into_iter().map(|(id, balance)| (id, balance.to_string())).collect();
    let page = Chrome::for_session(ctx.session, "Ledger", ctx.path);
    page::html(StatusCode::OK, &Accounts { page, accounts, total: total.to_string() })
}
