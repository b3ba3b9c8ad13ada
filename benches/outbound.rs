//! The outbound leg: one ping round trip to a loopback buyer that bids at once, three ways, sending the same
//! bytes: a raw hyper `client::conn` connection (the baseline), the engine's `BuyerClient::send` (its own
//! pooled HTTP/1.1, `src/delivery/wire.rs`; timeout, size limit), and the whole leg as the fan-out runs it (`ping_body`, then
//! `ping_buyer`: send with the deadline header and classify the bid). Client and server share one
//! current-thread runtime, so each figure is the CPU cost of a round trip on one core, with no cross-core
//! wake. Target (PERF.md): the engine's client ≤ 1.3× the raw leg.
//!
//! `cargo bench --bench outbound -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use gavel::delivery::{ping_body, ping_buyer, BuyerClient, PingOutcome};
use gavel::domain::money::Money;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const BID: &[u8] = br#"{"bid": "12.50", "bid_id": "b1"}"#;
/// Long enough never to fire: a timeout here would be a broken bench, not a figure.
const DEADLINE: Duration = Duration::from_secs(1);

/// A buyer that answers every request at once with a bid, on the current runtime.
async fn buyer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                let _ = request.into_body().collect().await;
                let mut answer = Response::new(Full::new(Bytes::from_static(BID)));
                answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok::<_, Infallible>(answer)
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

/// A config with one campaign and one buyer pinged at `addr`.
fn config_text(addr: SocketAddr) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nadmin_token = \"admin\"\n\n\
         [[sellers]]\nid = \"acme\"\napi_key = \"sk\"\n\n\
         [[campaigns]]\nid = \"auto-insurance\"\nping_fields = [\"postal_code\", \"state\", \"age\", \"homeowner\"]\n\
         floor = \"1.00\"\n\n\
         [[buyers]]\nid = \"b0\"\napi_key = \"bk0\"\ncampaigns = [\"auto-insurance\"]\n\
         ping_url = \"http://{addr}/ping\"\npost_url = \"http://{addr}/post\"\n"
    )
}

fn outbound(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let addr = runtime.block_on(buyer());
    let config = gavel::config::parse(&config_text(addr)).expect("bench config is valid");
    let campaign = config.campaign("auto-insurance").expect("campaign").clone();
    let buyer = &config.buyers[0];
    let uri = buyer.ping_url.clone().expect("the buyer is pinged");
    let lead = json!({"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true});
    let lead = lead.as_object().expect("object");
    let ping_id = "p_0123456789abcdef0123456789abcdef";
    let deadline_ms = u64::try_from(DEADLINE.as_millis()).expect("fits");
    let build_body = || ping_body(ping_id, &campaign.id, lead, buyer, deadline_ms, false);
    // What `ping_buyer` adds to every ping; the other two legs send it too, so all three send the same bytes.
    let deadline_header = (HeaderName::from_static("x-gavel-deadline-ms"), HeaderValue::from(deadline_ms));
    let body = build_body();

    let mut group = c.benchmark_group("outbound/ping round trip, one thread");

    let mut sender = runtime.block_on(async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        sender
    });
    let host = HeaderValue::from_str(&addr.to_string()).expect("host");
    group.bench_function("raw hyper client::conn", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut request = Request::new(Full::new(body.clone()));
                    *request.method_mut() = Method::POST;
                    *request.uri_mut() = Uri::from_static("/ping");
                    let headers = request.headers_mut();
                    headers.insert(HOST, host.clone());
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    headers.insert(deadline_header.0.clone(), deadline_header.1.clone());
                    sender.ready().await.expect("ready");
                    let response = sender.send_request(request).await.expect("answered");
                    assert_eq!(response.status(), 200);
                    let _ = response.into_body().collect().await.expect("body");
                }
                start.elapsed()
            })
        })
    });

    let client = BuyerClient::new();
    let extra = [deadline_header.clone()];
    group.bench_function("BuyerClient::send", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let answer = client.send(&uri, &buyer.headers, &extra, body.clone(), DEADLINE).await;
                    assert_eq!(answer.expect("answered").status, 200);
                }
                start.elapsed()
            })
        })
    });

    let expected = PingOutcome::Bid { amount: Money::from_cents(1250), bid_id: Some("b1".into()) };
    group.bench_function("ping_body + ping_buyer", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let outcome = ping_buyer(&client, buyer, &uri, build_body(), DEADLINE, campaign.max_bid).await;
                    assert_eq!(outcome, expected);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, outbound);
criterion_main!(benches);
