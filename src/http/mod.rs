//! The HTTP server: accept loop, worker threads ([`workers`]), routing, authentication and error mapping.
//! Thin: it parses, calls the engine and renders.

mod admin;
mod bare_errors;
pub mod body;
mod buyer;
mod cluster;
pub mod error;
pub mod limits;
mod openapi;
mod portal;
pub mod query;
pub mod routes;
mod seller;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::engine::Engine;
use error::ApiError;
use query::Query;
use routes::{Endpoint, Operator, Selected};
use workers::Workers;

use crate::ledger::{buyer_account, seller_account};

/// Every response this server sends.
pub type HttpResponse = Response<Full<Bytes>>;

/// Longest wait for in-flight requests at shutdown. Auctions end by their deadlines (at most 5 s); posts by
/// their buyers' post timeouts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// Accepts on `listener` and hands each connection to the next of `workers` until `shutdown` resolves, then
/// stops accepting, lets in-flight requests finish on every worker (within [`SHUTDOWN_GRACE`]) and returns
/// once the workers' threads have ended.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    mut workers: Workers,
    shutdown: impl Future<Output = ()>,
) {
    let connection_slots = limits::ConnectionSlots::new(engine.config().server.max_connections);
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
        workers.hand(stream, slot);
    }
    drop(listener);
    workers.stop().await;
}

/// The web pages of `engine`. Cluster mode keeps their sessions in Redis, so a browser may land on any node.
pub fn web_pages(engine: &Arc<Engine>) -> Arc<crate::web::Web> {
    match engine.coordinator.redis() {
        Some(redis) => {
            let sessions = Arc::new(crate::web::session::RedisSessionStore::new(Arc::clone(redis)));
            crate::web::Web::with_sessions(Arc::clone(engine), sessions)
        }
        None => crate::web::Web::start(Arc::clone(engine)),
    }
}

/// Answers one request.
pub async fn handle(engine: &Arc<Engine>, request: Request<Incoming>) -> HttpResponse {
    // The auction's deadline runs from here: the request's headers have just arrived.
    let received = Instant::now();
    engine.metrics.inbound_exchanges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    route(engine, request, received).await.unwrap_or_else(ApiError::into_response)
}

async fn route(engine: &Arc<Engine>, request: Request<Incoming>, received: Instant) -> Result<HttpResponse, ApiError> {
    // The path borrowed from a clone of the URI (reference-counted bytes, no copy), as `dispatch` takes the request.
    let uri = request.uri().clone();
    match routes::select(request.method(), uri.path()) {
        Selected::Route(endpoint, params) => dispatch(engine, endpoint, params.first(), request, received).await,
        Selected::WrongMethod(allowed) => Err(ApiError::method_not_allowed(allowed)),
        Selected::NotFound => Err(ApiError::not_found("route")),
    }
}

/// Runs one route's handler. `id` is the route's `{…}` segment ("" for routes without one). Each handler
/// authenticates its role first: a request without the right key learns nothing else.
async fn dispatch(
    engine: &Arc<Engine>,
    endpoint: Endpoint,
    id: &str,
    request: Request<Incoming>,
    received: Instant,
) -> Result<HttpResponse, ApiError> {
    let query = || Query::of(request.uri());
    match endpoint {
        Endpoint::Healthz => Ok(admin::healthz()),
        Endpoint::Readyz => Ok(cluster::readyz(engine)),
        Endpoint::Metrics => Ok(admin::metrics(engine)),
        Endpoint::OpenApi => Ok(openapi::document()),
        Endpoint::Ping => seller::ping(engine, request, received).await,
        Endpoint::Post => seller::post(engine, request).await,
        Endpoint::DirectPost => seller::direct_post(engine, request, received).await,
        Endpoint::SellerBalance => {
            let seller = portal::authenticate_seller(engine, &request)?;
            current_books(engine).await?;
            Ok(portal::seller_balance(engine, &seller))
        }
        Endpoint::SellerReturns => {
            let seller = portal::authenticate_seller(engine, &request)?;
            current_books(engine).await?;
            portal::seller_returns(engine, &seller, &query())
        }
        Endpoint::SellerStatement => {
            let seller = portal::authenticate_seller(engine, &request)?;
            current_books(engine).await?;
            portal::account_statement(engine, &seller_account(&seller.id), &query())
        }
        Endpoint::BuyerBalance => {
            let (buyer, state) = buyer::authenticate(engine, &request)?;
            current_books(engine).await?;
            buyer::balance(engine, &buyer, &state).await
        }
        Endpoint::BuyerLeads => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            current_books(engine).await?;
            buyer::leads(engine, &buyer, &query())
        }
        Endpoint::BuyerReturnPolicy => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            Ok(buyer::return_policy(&buyer))
        }
        Endpoint::BuyerReturns => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            current_books(engine).await?;
            Ok(buyer::returns(engine, &buyer))
        }
        Endpoint::BuyerStatus => {
            let (buyer, state) = buyer::authenticate(engine, &request)?;
            current_books(engine).await?;
            buyer::status(engine, &buyer, &state).await
        }
        Endpoint::BuyerPause | Endpoint::BuyerResume => {
            let (buyer, state) = buyer::authenticate(engine, &request)?;
            let pause = endpoint == Endpoint::BuyerPause;
            buyer::pause_or_resume(engine, request, &buyer, &state, pause).await
        }
        Endpoint::BuyerStatement => {
            let (_, state) = buyer::authenticate(engine, &request)?;
            current_books(engine).await?;
            portal::account_statement(engine, &state.account, &query())
        }
        Endpoint::FileReturn => {
            let (buyer, _) = buyer::authenticate(engine, &request)?;
            buyer::file_return(engine, request, &buyer).await
        }
        // `serve` hands these to the web pages before routing; only a direct caller of `handle` gets here.
        Endpoint::Page => Err(ApiError::not_found("route")),
        Endpoint::Operator(call) => {
            admin::authorize(engine, &request)?;
            // `/admin/cluster` answers whatever the stores do; the other reads show the current books.
            if request.method() == hyper::Method::GET && !matches!(call, Operator::Cluster | Operator::Config) {
                current_books(engine).await?;
            }
            operator(engine, call, id, request).await
        }
    }
}

/// Cluster mode: catches this node's books up before a read, so that it reflects every write answered
/// anywhere before it began (embedded books are always current).
async fn current_books(engine: &Engine) -> Result<(), ApiError> {
    Ok(engine.ledger.sync().await?)
}

/// The operator API's handlers, once the admin token is checked.
async fn operator(
    engine: &Engine,
    call: Operator,
    id: &str,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let query = || Query::of(request.uri());
    match call {
        Operator::Buyers => admin::buyers(engine).await,
        Operator::Buyer => admin::buyer(engine, id).await,
        Operator::PauseBuyer | Operator::ResumeBuyer => {
            admin::pause_or_resume(engine, request, id, call == Operator::PauseBuyer).await
        }
        Operator::Deposit => admin::deposit(engine, request, id).await,
        Operator::BuyerStatement => {
            engine.config().buyer(id).ok_or_else(|| ApiError::not_found("buyer"))?;
            portal::account_statement(engine, &buyer_account(id), &query())
        }
        Operator::Returns => admin::returns(engine, &query()),
        Operator::ApproveReturn | Operator::RejectReturn => {
            admin::decide_return(engine, request, id, call == Operator::ApproveReturn).await
        }
        Operator::PingAudit => admin::ping_audit(engine, id).await,
        Operator::DeliveryRecord => admin::delivery_record(engine, id),
        Operator::Accounts => Ok(admin::accounts(engine)),
        Operator::Transactions => Ok(admin::transactions(engine, &query())),
        Operator::SellerStatement => {
            engine.config().seller(id).ok_or_else(|| ApiError::not_found("seller"))?;
            portal::account_statement(engine, &seller_account(id), &query())
        }
        Operator::Payout => portal::payout(engine, request, id).await,
        Operator::Report => admin::report(engine, &query()),
        Operator::Config => Ok(admin::config(engine)),
        Operator::Cluster => Ok(cluster::cluster(engine).await),
        Operator::Reload => admin::reload(engine).await,
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}
