//! Signing in and out, and the checks every page request passes: a live session whose key is still in the
//! config, the role of the pages asked for, and on every change the session's CSRF token.

use askama::Template;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};

use super::form::{self, Form};
use super::page::{self, Chrome, PageError, WebResponse};
use super::session::{random_token, Role, Session, SessionKey};
use super::Web;
use crate::http::body::read_body;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    page: Chrome,
    problem: Option<&'a str>,
}

/// `GET /login`: the sign-in form.
pub fn login_page() -> WebResponse {
    page::html(StatusCode::OK, &LoginPage { page: Chrome::signed_out("Sign in"), problem: None })
}

/// `POST /login` with the form field `key`: the admin token, a buyer's or a seller's API key. A right key
/// starts a session and answers 303 to its pages; a wrong one answers 401 with the form and sets nothing.
pub async fn login(web: &Web, request: Request<Incoming>) -> WebResponse {
    let refused = |status, problem: &str| {
        page::html(status, &LoginPage { page: Chrome::signed_out("Sign in"), problem: Some(problem) })
    };
    if !form::same_site(request.headers()) {
        return refused(StatusCode::FORBIDDEN, "Sign in from this site's own sign-in page.");
    }
    let (headers, body) = match read_body(request, &web.engine.config().server).await {
        Ok(read) => read,
        Err(error) => return refused(error.status, &error.message),
    };
    let form = Form::parse(&String::from_utf8_lossy(&body));
    let key = form.get("key").unwrap_or("").trim();
    let Some(role) = role_of(web, key) else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "That key is not valid. Paste the operator's admin token, or a buyer's or seller's API key.",
        );
    };
    // A browser that was signed in gets a new session: its old token is of no further use to anyone.
    if let Some(old) = form::session_token(&headers) {
        let _ = web.sessions.remove(SessionKey::of(old)).await;
    }
    let home = if role == Role::Operator { "/console" } else { "/portal" };
    let token = random_token();
    if let Err(error) = web.sessions.insert(SessionKey::of(&token), Session::new(role, key)).await {
        tracing::warn!(%error, "sign-in refused");
        return refused(StatusCode::SERVICE_UNAVAILABLE, "Signing in is not possible right now; try again shortly.");
    }
    page::set_cookie(page::redirect(home), &form::session_cookie(&token, form::over_tls(&headers)))
}

/// Who `key` signs in as. Every comparison is by digest (see `config::keys`).
fn role_of(web: &Web, key: &str) -> Option<Role> {
    if key.is_empty() {
        return None;
    }
    let config = web.engine.config();
    if config.server.admin_token.matches(key) {
        return Some(Role::Operator);
    }
    if let Some(buyer) = config.buyer_by_key(key) {
        return Some(Role::Buyer(buyer.id.clone()));
    }
    config.seller_by_key(key).map(|seller| Role::Seller(seller.id.clone()))
}

/// `POST /logout`: ends the session and answers 303 to `/login`.
pub async fn logout(web: &Web, key: SessionKey, tls: bool) -> WebResponse {
    if let Err(error) = web.sessions.remove(key).await {
        tracing::warn!(%error, "sign-out could not reach the session store");
    }
    page::set_cookie(page::redirect("/login"), &form::expired_cookie(tls))
}

/// The request's session, if it has a live one whose key is still the key of its role in the config in
/// force (a rotated or removed key ends its sessions).
pub async fn session_of(web: &Web, headers: &HeaderMap) -> Result<Option<(SessionKey, Session)>, PageError> {
    let Some(token) = form::session_token(headers) else { return Ok(None) };
    let key = SessionKey::of(token);
    let unavailable = |error: super::session::StoreError| {
        tracing::warn!(%error, "session store");
        PageError::new(StatusCode::SERVICE_UNAVAILABLE, "Sessions cannot be read right now; try again shortly.")
    };
    let Some(session) = web.sessions.touch(key).await.map_err(unavailable)? else { return Ok(None) };
    let config = web.engine.config();
    let current_key = match &session.role {
        Role::Operator => Some(config.server.admin_token.expose()),
        Role::Buyer(id) => config.buyer(id).map(|buyer| buyer.api_key.expose()),
        Role::Seller(id) => config.seller(id).map(|seller| seller.api_key.expose()),
    };
    if !current_key.is_some_and(|current| session.signed_in_with(current)) {
        web.sessions.remove(key).await.map_err(unavailable)?;
        return Ok(None);
    }
    Ok(Some((key, session)))
}

/// The form of a change, once it is known to come from this site with the session's CSRF token (else 403).
pub async fn checked_form(web: &Web, request: Request<Incoming>, session: &Session) -> Result<Form, PageError> {
    let forbidden = || {
        PageError::new(
            StatusCode::FORBIDDEN,
            "This form did not come from a page of this session (or the page is out of date); reload it and try again.",
        )
    };
    if !form::same_site(request.headers()) {
        return Err(forbidden());
    }
    let (_, body) = read_body(request, &web.engine.config().server).await?;
    let form = Form::parse(&String::from_utf8_lossy(&body));
    match form.get("csrf") {
        Some(token) if session.csrf_matches(token) => Ok(form),
        _ => Err(forbidden()),
    }
}
