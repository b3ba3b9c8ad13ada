//! The HTTP server: accept loop, routing, authentication and error mapping. Thin: it parses, calls the
//! engine and renders.

mod admin;
pub mod body;
mod buyer;
pub mod error;
pub mod limits;
mod portal;
pub mod query;
mod seller;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::engine::Engine;
use error::ApiError;
use query::Query;

use crate::ledger::{buyer_account, seller_account};

/// Every response this server sends.
pub type HttpResponse = Response<Full<Bytes>>;

/// Longest wait for in-flight requests at shutdown. Auctions end by their deadlines (at most 5 s); posts by
/// their buyers' post timeouts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish (within
/// [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve(engine: Arc<Engine>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let server_config = engine.config().server.clone();
    let mut builder = http1::Builder::new();
    limits::configure(&mut builder, &server_config);
    let connection_slots = limits::ConnectionSlots::new(server_config.max_connections);
    let web = crate::web::Web::start(Arc::clone(&engine));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = connection_slots.acquire() => slot,
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Usually out of file descriptors: back off briefly rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Seller answers are small and latency-bound: never wait to coalesce them.
        let _ = stream.set_nodelay(true);
        let engine = Arc::clone(&engine);
        let web = Arc::clone(&web);
        let service = service_fn(move |request: Request<Incoming>| {
            let engine = Arc::clone(&engine);
            let web = Arc::clone(&web);
            async move {
                // The pages (API.md section 10) answer only their own paths; the JSON APIs never see a cookie.
                if crate::web::claims(request.uri().path()) {
                    return Ok::<_, Infallible>(web.handle(request).await.map(Either::Right));
                }
                Ok(handle(&engine, request).await.map(Either::Left))
            }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    // Open event streams never end by themselves, and graceful shutdown waits for them (hyperium/hyper#2787).
    web.shutdown();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period ended with requests still in flight");
    }
}

/// Answers one request.
pub async fn handle(engine: &Engine, request: Request<Incoming>) -> HttpResponse {
    // The auction's deadline runs from here: the request's headers have just arrived.
    let received = Instant::now();
    engine.metrics.inbound_exchanges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    route(engine, request, received).await.unwrap_or_else(ApiError::into_response)
}

async fn route(engine: &Engine, request: Request<Incoming>, received: Instant) -> Result<HttpResponse, ApiError> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (segments.as_slice(), method) {
        (["healthz"], Method::GET) => Ok(admin::healthz()),
        (["metrics"], Method::GET) => Ok(admin::metrics(engine)),
        (["v1", "ping"], Method::POST) => seller::ping(engine, request, received).await,
        (["v1", "post"], Method::POST) => seller::post(engine, request).await,
        (["v1", "leads"], Method::POST) => seller::direct_post(engine, request, received).await,
        (["admin", "pings", ping_id], Method::GET) => {
            admin::authorize(engine, &request)?;
            admin::ping_audit(engine, ping_id)
        }
        (["admin", "leads", lead_id], Method::GET) => {
            admin::authorize(engine, &request)?;
            admin::delivery_record(engine, lead_id).await
        }
        (["admin", "config"], Method::GET) => {
            admin::authorize(engine, &request)?;
            Ok(admin::config(engine))
        }
        (["admin", "reload"], Method::POST) => {
            admin::authorize(engine, &request)?;
            admin::reload(engine)
        }
        (["admin", "buyers"], Method::GET) => {
            admin::authorize(engine, &request)?;
            Ok(admin::buyers(engine).await)
        }
        (["admin", "buyers", id], Method::GET) => {
            admin::authorize(engine, &request)?;
            admin::buyer(engine, id).await
        }
        (["admin", "buyers", id, action @ ("pause" | "resume")], Method::POST) => {
            admin::authorize(engine, &request)?;
            admin::pause_or_resume(engine, request, id, *action == "pause").await
        }
        (["admin", "buyers", id, "deposits"], Method::POST) => {
            admin::authorize(engine, &request)?;
            admin::deposit(engine, request, id).await
        }
        (["admin", "returns"], Method::GET) => {
            admin::authorize(engine, &request)?;
            admin::returns(engine, &Query::of(request.uri())).await
        }
        (["admin", "returns", id, action @ ("approve" | "reject")], Method::POST) => {
            admin::authorize(engine, &request)?;
            admin::decide_return(engine, request, id, *action == "approve").await
        }
        (["admin", "ledger", "accounts"], Method::GET) => {
            admin::authorize(engine, &request)?;
            Ok(admin::accounts(engine).await)
        }
        (["admin", "ledger", "transactions"], Method::GET) => {
            admin::authorize(engine, &request)?;
            Ok(admin::transactions(engine, &Query::of(request.uri())).await)
        }
        (["admin", "report"], Method::GET) => {
            admin::authorize(engine, &request)?;
            admin::report(engine, &Query::of(request.uri())).await
        }
        (["v1", "buyer", "balance"], Method::GET) => {
            let (buyer, state) = buyer::authenticate(engine, &request)?;
            Ok(buyer::balance(engine, &buyer, &state).await)
        }
        (["v1", "buyer", "leads"], Method::GET) => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            buyer::leads(engine, &buyer, &Query::of(request.uri())).await
        }
        (["v1", "buyer", "return-policy"], Method::GET) => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            Ok(buyer::return_policy(&buyer))
        }
        (["v1", "buyer", "returns"], Method::GET) => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            Ok(buyer::returns(engine, &buyer).await)
        }
        (["v1", "buyer", "status"], Method::GET) => {
            let (buyer, state) = buyer::authenticate(engine, &request)?;
            Ok(buyer::status(&buyer, &state))
        }
        (["v1", "buyer", action @ ("pause" | "resume")], Method::POST) => {
            let (buyer, state) = buyer::authenticate(engine, &request)?;
            buyer::pause_or_resume(engine, request, &buyer, &state, *action == "pause").await
        }
        (["v1", "buyer", "statement"], Method::GET) => {
            let (_, state) = buyer::authenticate(engine, &request)?;
            portal::account_statement(engine, &state.account, &Query::of(request.uri())).await
        }
        (["v1", "seller", "balance"], Method::GET) => {
            let seller = portal::authenticate_seller(engine, &request)?;
            Ok(portal::seller_balance(engine, &seller).await)
        }
        (["v1", "seller", "returns"], Method::GET) => {
            let seller = portal::authenticate_seller(engine, &request)?;
            portal::seller_returns(engine, &seller, &Query::of(request.uri())).await
        }
        (["v1", "seller", "statement"], Method::GET) => {
            let seller = portal::authenticate_seller(engine, &request)?;
            portal::account_statement(engine, &seller_account(&seller.id), &Query::of(request.uri())).await
        }
        (["admin", "buyers", id, "statement"], Method::GET) => {
            admin::authorize(engine, &request)?;
            engine.config().buyer(id).ok_or_else(|| ApiError::not_found("buyer"))?;
            portal::account_statement(engine, &buyer_account(id), &Query::of(request.uri())).await
        }
        (["admin", "sellers", id, "statement"], Method::GET) => {
            admin::authorize(engine, &request)?;
            engine.config().seller(id).ok_or_else(|| ApiError::not_found("seller"))?;
            portal::account_statement(engine, &seller_account(id), &Query::of(request.uri())).await
        }
        (["admin", "sellers", id, "payouts"], Method::POST) => {
            admin::authorize(engine, &request)?;
            portal::payout(engine, request, id).await
        }
        (["v1", "returns"], Method::POST) => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            buyer::file_return(engine, request, &buyer).await
        }
        (
            ["healthz"]
            | ["metrics"]
            | ["admin", "pings" | "leads", _]
            | ["admin", "config"]
            | ["admin", "buyers"]
            | ["admin", "buyers", _]
            | ["admin", "returns"]
            | ["admin", "ledger", "accounts" | "transactions"]
            | ["admin", "report"]
            | ["v1", "buyer", "balance" | "leads" | "return-policy" | "returns" | "status" | "statement"]
            | ["v1", "seller", "balance" | "returns" | "statement"]
            | ["admin", "buyers" | "sellers", _, "statement"],
            _,
        ) => Err(ApiError::method_not_allowed("GET")),
        (["admin", "buyers", _, "pause" | "resume" | "deposits"], _) => Err(ApiError::method_not_allowed("POST")),
        (["admin", "returns", _, "approve" | "reject"] | ["admin", "reload"], _) => {
            Err(ApiError::method_not_allowed("POST"))
        }
        (["v1", "buyer", "pause" | "resume"] | ["admin", "sellers", _, "payouts"], _) => {
            Err(ApiError::method_not_allowed("POST"))
        }
        (["v1", "ping" | "post" | "leads" | "returns"], _) => Err(ApiError::method_not_allowed("POST")),
        _ => Err(ApiError::not_found("route")),
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}
