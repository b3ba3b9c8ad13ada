//! The buyer and seller portals (`/portal`, API.md section 10): the pages of whoever signed in, each showing
//! only that party's own figures.

mod buyer;
mod seller;

use super::page::{PageError, WebResponse};
use super::session::Role;
use super::Ctx;

/// Answers a portal page; the session is a buyer's or a seller's.
pub async fn route(ctx: &Ctx<'_>) -> Result<WebResponse, PageError> {
    let rest = ctx.rest();
    match &ctx.session.role {
        Role::Buyer(id) => buyer::route(ctx, id, &rest).await,
        Role::Seller(id) => seller::route(ctx, id, &rest).await,
        Role::Operator => Err(PageError::not_found()),
    }
}
