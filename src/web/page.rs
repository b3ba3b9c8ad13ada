//! Responses of the web part: pages with their security headers, redirects, downloads, and the error page.

use std::convert::Infallible;

use askama::Template;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Response, StatusCode};

use super::session::{Role, Session};
use crate::http::error::ApiError;
use crate::http::query::Query;
use crate::ops::OpError;

/// The body of every web response: whole, or a stream (server-sent events).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A web response.
pub type WebResponse = Response<Body>;

/// No inline script or style and no other origin (API.md section 10): the pages load only their own files.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// Adds the headers every web response carries.
pub fn secure(mut response: WebResponse) -> WebResponse {
    let headers = response.headers_mut();
    headers.insert("content-security-policy", HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(CACHE_CONTROL) {
        // Pages show money and leads: never kept by a browser or a proxy.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A response with a status, a content type and a whole body.
pub fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> WebResponse {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A rendered page.
pub fn html(status: StatusCode, template: &impl Template) -> WebResponse {
    match template.render() {
        Ok(text) => with_body(status, "text/html; charset=utf-8", text),
        Err(error) => {
            tracing::error!(%error, "page template failed");
            with_body(StatusCode::INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", "the page could not be drawn")
        }
    }
}

/// 303 See Other to `location` (after a form, and to the sign-in page).
pub fn redirect(location: &str) -> WebResponse {
    let mut response = with_body(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// A CSV download named `filename`.
pub fn csv(filename: &str, text: String) -> WebResponse {
    let mut response = with_body(StatusCode::OK, "text/csv; charset=utf-8", text);
    let disposition = format!("attachment; filename=\"{filename}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    response
}

/// Adds a `Set-Cookie` header.
pub fn set_cookie(mut response: WebResponse, cookie: &str) -> WebResponse {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// One link of the navigation bar.
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every page shows around its content: title, navigation, who is signed in, the sign-out form.
pub struct Chrome {
    pub title: String,
    pub nav: Vec<NavLink>,
    /// Who is signed in, for the header; `None` on the sign-in and error pages of a signed-out browser.
    pub who: Option<String>,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// A message about the change just made (after a redirect).
    pub notice: Option<&'static str>,
}

const CONSOLE_NAV: [(&str, &str); 8] = [
    ("/console", "Dashboard"),
    ("/console/auctions", "Auctions"),
    ("/console/buyers", "Buyers"),
    ("/console/returns", "Returns"),
    ("/console/report", "Report"),
    ("/console/leads", "Leads"),
    ("/console/ledger", "Ledger"),
    ("/console/config", "Config"),
];

const BUYER_NAV: [(&str, &str); 4] = [
    ("/portal", "Overview"),
    ("/portal/leads", "Leads"),
    ("/portal/returns", "Returns"),
    ("/portal/statement", "Statement"),
];

const SELLER_NAV: [(&str, &str); 3] =
    [("/portal", "Overview"), ("/portal/returns", "Returns"), ("/portal/statement", "Statement")];

impl Chrome {
    /// The chrome of a page at `path` for a signed-in session; the nav link of the part `path` is in is
    /// marked current.
    pub fn for_session(session: &Session, title: impl Into<String>, path: &str) -> Chrome {
        let (links, who): (&[(&'static str, &'static str)], String) = match &session.role {
            Role::Operator => (&CONSOLE_NAV, "Operator".to_owned()),
            Role::Buyer(id) => (&BUYER_NAV, format!("Buyer {id}")),
            Role::Seller(id) => (&SELLER_NAV, format!("Seller {id}")),
        };
        // The longest link that is a prefix of the path is the current part.
        let current = links
            .iter()
            .filter(|(href, _)| path == *href || path.starts_with(&format!("{href}/")))
            .map(|(href, _)| *href)
            .max_by_key(|href| href.len());
        let nav = links.iter().map(|&(href, label)| NavLink { href, label, current: Some(href) == current }).collect();
        Chrome { title: title.into(), nav, who: Some(who), csrf: session.csrf.clone(), notice: None }
    }

    /// The chrome of a page for a browser that is not signed in.
    pub fn signed_out(title: impl Into<String>) -> Chrome {
        Chrome { title: title.into(), nav: Vec::new(), who: None, csrf: String::new(), notice: None }
    }

    /// With the message of a change just made.
    pub fn notice(mut self, notice: Option<&'static str>) -> Chrome {
        self.notice = notice;
        self
    }
}

/// A refusal shown as a page: its status and what to do about it.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError { status, message: message.into() }
    }

    pub fn not_found() -> PageError {
        PageError::new(StatusCode::NOT_FOUND, "There is no such page, or it is not yours to see.")
    }

    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The JSON APIs' statuses and messages, so a page refuses exactly as the API does.
impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        PageError::new(error.status, error.message)
    }
}

impl From<OpError> for PageError {
    fn from(error: OpError) -> PageError {
        ApiError::from(error).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: Chrome,
    status: u16,
    message: &'a str,
    home: &'static str,
}

/// The page of a refusal; `session` (when signed in) gives it the navigation and a way home.
pub fn error_page(error: &PageError, session: Option<&Session>, path: &str) -> WebResponse {
    let title = error.status.canonical_reason().unwrap_or("Error");
    let (page, home) = match session {
        Some(session) => (
            Chrome::for_session(session, title, path),
            if session.role == Role::Operator { "/console" } else { "/portal" },
        ),
        None => (Chrome::signed_out(title), "/login"),
    };
    html(error.status, &ErrorPage { page, status: error.status.as_u16(), message: &error.message, home })
}

/// The message of a change just made, from the `done` code a form's redirect carries (fixed texts only, so
/// a crafted link cannot put words on the page).
pub fn notice_of(query: &Query) -> Option<&'static str> {
    Some(match query.get("done")? {
        "paused" => "Paused: the buyer receives no pings until it is resumed.",
        "resumed" => "Resumed.",
        "deposited" => "The deposit is recorded.",
        "approved" => "The return is approved: the buyer is credited and the seller's payout taken back.",
        "rejected" => "The return is rejected.",
        "reloaded" => "The config file was reloaded.",
        _ => return None,
    })
}

/// `text` made safe as one path segment: letters, digits, `_`, `-` and `.` as they are, the rest
/// percent-encoded.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A JSON value as a page shows it: text as it is, numbers as written, nothing as a dash.
pub fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "—".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
