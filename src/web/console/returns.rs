//! The console's returns: the review queue with approve and reject (with a note), and recent decisions.

use askama::Template;
use hyper::StatusCode;

use crate::domain::returns::ReturnStatus;
use crate::ledger::Return;
use crate::ops;
use crate::web::page::{self, Chrome, PageError, WebResponse};
use crate::web::Ctx;

/// Decided returns the page lists.
const RECENT_DECISIONS: usize = 50;

/// `/console/returns…`; `rest` is the path after `returns`.
pub async fn route(ctx: &Ctx<'_>, rest: &[&str]) -> Result<WebResponse, PageError> {
    match (rest, ctx.form.is_some()) {
        ([], false) => Ok(queue(ctx).await),
        ([id, action @ ("approve" | "reject")], true) => {
            let approve = *action == "approve";
            let note = ctx.form().text("note").map(str::to_owned);
            ops::returns::decide(ctx.engine, id, approve, note).await?;
            Ok(page::redirect(if approve {
                "/console/returns?done=approved"
            } else {
                "/console/returns?done=rejected"
            }))
        }
        _ => Err(PageError::not_found()),
    }
}

/// A return as the console lists it.
pub struct ReturnLine {
    pub return_id: String,
    pub lead_id: String,
    pub buyer: String,
    pub reason: String,
    pub note: String,
    pub status: &'static str,
    pub decision_reason: &'static str,
    pub decision_note: String,
    pub credit: String,
    pub created_at: String,
    pub decided_at: String,
}

impl ReturnLine {
    pub fn of(filed: &Return) -> ReturnLine {
        ReturnLine {
            return_id: filed.return_id.clone(),
            lead_id: filed.lead_id.clone(),
            buyer: filed.buyer.clone(),
            reason: filed.reason.clone(),
            note: filed.note.clone().unwrap_or_default(),
            status: filed.status.label(),
            decision_reason: filed.decision_reason.label(),
            decision_note: filed.decision_note.clone().unwrap_or_default(),
            credit: filed.credit.to_string(),
            created_at: crate::time::rfc3339(filed.created_at),
            decided_at: filed.decided_at.map(crate::time::rfc3339).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/returns.html")]
struct Queue {
    page: Chrome,
    pending: Vec<ReturnLine>,
    decided: Vec<ReturnLine>,
}

async fn queue(ctx: &Ctx<'_>) -> WebResponse {
    let all = ops::returns::all(ctx.engine, None);
    let pending = all.iter().filter(|r| r.status == ReturnStatus::PendingReview).map(ReturnLine::of).collect();
    let decided = all
        .iter()
        .filter(|r| r.status != ReturnStatus::PendingReview)
        .take(RECENT_DECISIONS)
        .map(ReturnLine::of)
        .collect();
    let page = Chrome::for_session(ctx.session, "Returns", ctx.path).notice(page::notice_of(&ctx.query));
    page::html(StatusCode::OK, &Queue { page, pending, decided })
}
