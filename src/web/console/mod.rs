//! The operator console (`/console`, API.md section 10): the live dashboard and auctions, each auction's
//! trace, and the config; the buyers, returns and books pages are in the modules below.

mod books;
mod buyers;
mod returns;

use std::sync::Arc;

use askama::Template;
use hyper::StatusCode;

use super::dashboard::Frame;
use super::page::{self, shown, Chrome, PageError, WebResponse};
use super::{sse, Ctx};
use crate::ops;

/// Answers a console page; the session is the operator's.
pub async fn route(ctx: &Ctx<'_>) -> Result<WebResponse, PageError> {
    let rest = ctx.rest();
    match rest.first().copied() {
        Some("buyers") => return buyers::route(ctx, &rest[1..]).await,
        Some("returns") => return returns::route(ctx, &rest[1..]).await,
        Some("report" | "report.csv" | "leads" | "ledger") => return books::route(ctx, &rest).await,
        _ => {}
    }
    match (rest.as_slice(), ctx.form.is_some()) {
        ([], false) => Ok(dashboard(ctx).await),
        (["events"], false) => events(ctx),
        (["auctions"], false) => Ok(auctions(ctx).await),
        (["auctions", "find"], false) => {
            let ping_id = ctx.query.get("ping_id").unwrap_or("").trim();
            Ok(page::redirect(&format!("/console/auctions/{}", page::path_segment(ping_id))))
        }
        (["auctions", ping_id], false) => trace(ctx, ping_id).await,
        (["config"], false) => Ok(config(ctx, None)),
        (["config", "reload"], true) => Ok(reload(ctx).await),
        _ => Err(PageError::not_found()),
    }
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    page: Chrome,
    frame: Arc<Frame>,
}

async fn dashboard(ctx: &Ctx<'_>) -> WebResponse {
    let frame = ctx.web.frames.fresh().await;
    page::html(StatusCode::OK, &Dashboard { page: Chrome::for_session(ctx.session, "Dashboard", ctx.path), frame })
}

/// `GET /console/events`: the dashboard's server-sent events, one stream per open page.
fn events(ctx: &Ctx<'_>) -> Result<WebResponse, PageError> {
    sse::dashboard(&ctx.web.streams, ctx.web.frames.follow(), ctx.web.stop.subscribe()).ok_or_else(|| {
        PageError::new(StatusCode::SERVICE_UNAVAILABLE, "Too many live pages are open; close some and reload.")
    })
}

#[derive(Template)]
#[template(path = "console/auctions.html")]
struct Auctions {
    page: Chrome,
    frame: Arc<Frame>,
}

async fn auctions(ctx: &Ctx<'_>) -> WebResponse {
    let frame = ctx.web.frames.fresh().await;
    page::html(StatusCode::OK, &Auctions { page: Chrome::for_session(ctx.session, "Auctions", ctx.path), frame })
}

/// One buyer's part in an auction, for display.
struct BuyerLine {
    buyer: String,
    outcome: String,
    detail: String,
    latency_ms: String,
    bid: String,
}

struct PostLine {
    buyer: String,
    lead_id: String,
    outcome: String,
    detail: String,
    latency_ms: String,
}

struct SaleLine {
    buyer: String,
    lead_id: String,
    price: String,
    payout: String,
}

#[derive(Template)]
#[template(path = "console/trace.html")]
struct Trace {
    page: Chrome,
    ping_id: String,
    test: bool,
    campaign: String,
    seller: String,
    received_at: String,
    deadline_ms: String,
    elapsed_ms: String,
    winner: String,
    price: String,
    payout: String,
    buyers: Vec<BuyerLine>,
    posts: Vec<PostLine>,
    sales: Vec<SaleLine>,
}

/// `GET /console/auctions/{ping_id}`: the audit trail of `GET /admin/pings/{ping_id}` as a page.
async fn trace(ctx: &Ctx<'_>, ping_id: &str) -> Result<WebResponse, PageError> {
    let trail = ops::books::auction(ctx.engine, ping_id).await?;
    let list = |key: &str| trail[key].as_array().cloned().unwrap_or_default();
    let buyers = list("buyers")
        .iter()
        .map(|b| BuyerLine {
            buyer: shown(&b["buyer"]),
            outcome: shown(&b["outcome"]),
            detail: shown(&b["detail"]),
            latency_ms: shown(&b["latency_ms"]),
            bid: shown(&b["bid"]),
        })
        .collect();
    let posts = list("posts")
        .iter()
        .map(|p| PostLine {
            buyer: shown(&p["buyer"]),
            lead_id: shown(&p["lead_id"]),
            outcome: shown(&p["outcome"]),
            detail: shown(&p["detail"]),
            latency_ms: shown(&p["latency_ms"]),
        })
        .collect();
    let sales = list("sales")
        .iter()
        .map(|s| SaleLine {
            buyer: shown(&s["buyer"]),
            lead_id: shown(&s["lead_id"]),
            price: shown(&s["price"]),
            payout: shown(&s["payout"]),
        })
        .collect();
    let trace = Trace {
        page: Chrome::for_session(ctx.session, format!("Auction {ping_id}"), ctx.path),
        ping_id: shown(&trail["ping_id"]),
        test: trail["test"].as_bool().unwrap_or(false),
        campaign: shown(&trail["campaign"]),
        seller: shown(&trail["seller"]),
        received_at: shown(&trail["received_at"]),
        deadline_ms: shown(&trail["deadline_ms"]),
        elapsed_ms: shown(&trail["elapsed_ms"]),
        winner: shown(&trail["winner"]),
        price: shown(&trail["price"]),
        payout: shown(&trail["payout"]),
        buyers,
        posts,
        sales,
    };
    Ok(page::html(StatusCode::OK, &trace))
}

#[derive(Template)]
#[template(path = "console/config.html")]
struct ConfigPage {
    page: Chrome,
    problems: Option<String>,
    revision: String,
    loaded_at: String,
    sellers: String,
    campaigns: String,
    buyers: String,
}

fn config(ctx: &Ctx<'_>, problems: Option<String>) -> WebResponse {
    let view = ops::books::config(ctx.engine);
    let status = if problems.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let notice = page::notice_of(&ctx.query);
    page::html(
        status,
        &ConfigPage {
            page: Chrome::for_session(ctx.session, "Config", ctx.path).notice(notice),
            problems,
            revision: shown(&view["revision"]),
            loaded_at: shown(&view["loaded_at"]),
            sellers: shown(&view["sellers"]),
            campaigns: shown(&view["campaigns"]),
            buyers: shown(&view["buyers"]),
        },
    )
}

/// `POST /console/config/reload`: as `POST /admin/reload`; a refused file shows every problem.
async fn reload(ctx: &Ctx<'_>) -> WebResponse {
    match ops::books::reload(ctx.engine).await {
        Ok(_) => page::redirect("/console/config?done=reloaded"),
        Err(error) => config(ctx, Some(error.to_string())),
    }
}
