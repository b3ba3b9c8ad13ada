//! The web pages (API.md section 10): the operator console (`/console`) and the buyer and seller portals
//! (`/portal`), served by the same server beside the JSON APIs, from templates and files compiled into the
//! binary.
//!
//! - [`session`] — server-side sessions behind [`session::SessionStore`]; the cookie holds a random token.
//! - [`auth`] — sign-in, sign-out, and the checks every request passes (session, role, CSRF token).
//! - [`console`], [`portal`] — the pages, each calling the same [`crate::ops`] as the JSON APIs.
//! - [`dashboard`], [`chart`], [`sse`] — the live dashboard: one task, one frame a second, one stream a page.
//! - [`csv`] — downloads; [`page`], [`form`], [`assets`] — responses, request parsing, static files.
//!
//! The JSON APIs never read the cookie: they keep `Authorization: Bearer`, and this part answers only the
//! paths [`claims`] names.

pub mod assets;
pub mod auth;
pub mod chart;
pub mod console;
pub mod csv;
pub mod dashboard;
pub mod form;
pub mod page;
pub mod portal;
pub mod session;
pub mod sse;
pub mod statement;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::http::query::Query;
use form::Form;
use page::{error_page, PageError, WebResponse};
use session::{MemorySessionStore, Role, Session, SessionStore};

/// Whether a request belongs to the pages: `GET`/`POST /login`, `POST /logout`, and anything under `/`,
/// `/console`, `/portal` and `/assets/`. Other methods on `/login` and `/logout` are left to the route table,
/// which answers them 405 with `Allow`, as for every documented path.
pub fn claims(method: &Method, path: &str) -> bool {
    let trimmed = path.trim_matches('/');
    match trimmed.split('/').next().unwrap_or("") {
        "login" => trimmed == "login" && (*method == Method::GET || *method == Method::POST),
        "logout" => trimmed == "logout" && *method == Method::POST,
        "" | "console" | "portal" | "assets" => true,
        _ => false,
    }
}

/// The pages' shared state: sessions, the dashboard's frames, and the stop signal of open streams.
pub struct Web {
    engine: Arc<Engine>,
    sessions: Arc<dyn SessionStore>,
    frames: dashboard::Frames,
    stop: watch::Sender<bool>,
    streams: sse::OpenStreams,
    dashboard: JoinHandle<()>,
}

impl Web {
    /// The pages of `engine` with sessions kept in this process's memory (one node).
    pub fn start(engine: Arc<Engine>) -> Arc<Web> {
        Web::with_sessions(engine, Arc::new(MemorySessionStore::default()))
    }

    /// The pages of `engine` with sessions in `sessions` (a store shared by the nodes of a cluster).
    pub fn with_sessions(engine: Arc<Engine>, sessions: Arc<dyn SessionStore>) -> Arc<Web> {
        let (stop, stopped) = watch::channel(false);
        let (frames, dashboard) = dashboard::start(Arc::clone(&engine), stopped);
        Arc::new(Web { engine, sessions, frames, stop, streams: sse::OpenStreams::default(), dashboard })
    }

    /// Ends every open event stream and the dashboard's task. Called when the server stops accepting, so
    /// that graceful shutdown is not held up by streams that never end on their own.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
        self.dashboard.abort();
    }

    /// Event streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.count()
    }

    /// Answers a request for one of the paths [`claims`] names, with the security headers of every page.
    pub async fn handle(&self, request: Request<Incoming>) -> WebResponse {
        page::secure(self.dispatch(request).await)
    }

    async fn dispatch(&self, request: Request<Incoming>) -> WebResponse {
        let path = request.uri().path().to_owned();
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let method = request.method().clone();
        let query = Query::of(request.uri());
        let tls = form::over_tls(request.headers());
        match (first, &method) {
            ("assets", &Method::GET) => {
                let name = path.trim_start_matches("/assets/");
                return assets::serve(name).unwrap_or_else(|| error_page(&PageError::not_found(), None, &path));
            }
            ("login", &Method::GET) => return auth::login_page(),
            ("login", &Method::POST) => return auth::login(self, request).await,
            ("login" | "assets", _) => return error_page(&method_not_allowed(), None, &path),
            _ if method != Method::GET && method != Method::POST => {
                return error_page(&method_not_allowed(), None, &path);
            }
            _ => {}
        }
        let (key, session) = match auth::session_of(self, request.headers()).await {
            Ok(Some(found)) => found,
            Ok(None) => return page::redirect("/login"),
            Err(error) => return error_page(&error, None, &path),
        };
        let form = if method == Method::POST {
            match auth::checked_form(self, request, &session).await {
                Ok(form) => Some(form),
                Err(error) => return error_page(&error, Some(&session), &path),
            }
        } else {
            None
        };
        // As the JSON dispatcher does: a page shows the current books (cluster mode: caught up first).
        if method == Method::GET {
            if let Err(error) = crate::ops::current(&self.engine).await {
                return error_page(&error.into(), Some(&session), &path);
            }
        }
        let ctx = Ctx { web: self, engine: &self.engine, session: &session, path: &path, query, form };
        let answered = match (first, &method) {
            ("", &Method::GET) => {
                Ok(page::redirect(if session.role == Role::Operator { "/console" } else { "/portal" }))
            }
            ("logout", &Method::POST) => Ok(auth::logout(self, key, tls).await),
            ("console", _) if session.role != Role::Operator => Err(wrong_role("/portal")),
            ("portal", _) if session.role == Role::Operator => Err(wrong_role("/console")),
            ("console", _) => console::route(&ctx).await,
            ("portal", _) => portal::route(&ctx).await,
            _ => Err(method_not_allowed()),
        };
        answered.unwrap_or_else(|error| error_page(&error, Some(&session), &path))
    }
}

fn method_not_allowed() -> PageError {
    PageError::new(StatusCode::METHOD_NOT_ALLOWED, "This page does not take that kind of request.")
}

fn wrong_role(home: &str) -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        format!("These pages are not for the role you signed in as; yours are at {home}."),
    )
}

/// One request to a page, signed in.
pub struct Ctx<'a> {
    pub web: &'a Web,
    pub engine: &'a Engine,
    pub session: &'a Session,
    pub path: &'a str,
    pub query: Query,
    /// A POST's form, its CSRF token already checked.
    pub form: Option<Form>,
}

impl Ctx<'_> {
    /// The path's segments after the first (`/console/buyers/acme` → `["buyers", "acme"]`).
    pub fn rest(&self) -> Vec<&str> {
        self.path.trim_matches('/').split('/').skip(1).filter(|s| !s.is_empty()).collect()
    }

    /// The submitted form (an empty one for a GET).
    pub fn form(&self) -> &Form {
        static EMPTY: std::sync::OnceLock<Form> = std::sync::OnceLock::new();
        self.form.as_ref().unwrap_or_else(|| EMPTY.get_or_init(|| Form::parse("")))
    }
}
