//! `openapi.yaml` against the code and the running server: the document is OpenAPI 3.1 and self-consistent,
//! its examples match its schemas, the router's route table and the document list the same operations, the
//! server serves it, and every answer of a real session — success and error, on every operation — matches the
//! schema the document gives for that operation and status. An undocumented status fails, and so does a
//! documented one that no test produces unless it is listed in [`NOT_PRODUCED`] with the reason.

use std::collections::BTreeSet;
use std::time::Duration;

use gavel::http::routes::ROUTES;
use gavel::readiness::Readiness;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::contract::{contract, escape, Body, Checked, Seen, DOCUMENT_PATH};
use crate::helpers::*;

/// Operations of section 10 that the web module serves; until it lands they are documented but not routed.
/// The drift test fails once one is served, so the entry is then removed and the operation checked as any.
/// (The web pages landed: sign-in and sign-out are checked by `pages` below.)
const AWAITING_WEB: &[(&str, &str)] = &[];

/// Documented statuses no test here produces, by operation (`*`: every operation), with the reason.
const NOT_PRODUCED: &[(&str, &str, &str)] = &[
    ("*", "500", "needs a journal that fails to sync; the ledger's own tests cover that path"),
    ("*", "503", "overloaded is tests/api/shedding.rs; shutting_down and unavailable need a stopping or cluster node"),
    ("*", "408", "needs a body sent slowly over a raw socket: tests/api/limits.rs"),
    ("*", "429", "produced on ping only: the rate limit is the same code path for a direct post"),
    ("*", "431", "answered before routing, the same for every operation: produced on healthz"),
    ("adminReload", "503", "a reload needs no store"),
    ("directPost", "422", "the lead rules are the ping's: produced on ping"),
    ("buyerPause", "403", "produced on buyerResume; the same self_pause check"),
];

fn not_produced(operation: &str, status: &str) -> bool {
    NOT_PRODUCED.iter().any(|(op, st, _)| (*op == "*" || *op == operation) && (*st == "*" || *st == status))
}

#[test]
fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let doc = &contract().doc;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    let mut references = Vec::new();
    collect_refs(doc, &mut references);
    assert!(references.len() > 100, "the document uses its components");
    for reference in references {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference} is not local"));
        assert!(doc.pointer(pointer).is_some(), "{reference} does not resolve");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes.keys().collect::<Vec<_>>(), ["adminToken", "buyerKey", "sellerKey"]);
    let mut ids = BTreeSet::new();
    for (method, path) in contract().operations() {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        let security = operation["security"].as_array().unwrap_or_else(|| panic!("{id}: security stated"));
        for requirement in security {
            for scheme in requirement.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(scheme), "{id}: unknown scheme {scheme}");
            }
        }
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.contains_key("default"), "{id}: every status is named, none is `default`");
        assert!(responses.keys().all(|s| s.len() == 3 && s.parse::<u16>().is_ok()), "{id}: {responses:?}");
    }
    // Every schema compiles (and so every reference inside schemas resolves for the validator).
    for name in doc["components"]["schemas"].as_object().expect("schemas").keys() {
        let _ = contract().validate(&format!("/components/schemas/{name}"), &Value::Null);
    }
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                into.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

#[test]
fn every_example_matches_its_schema() {
    let doc = &contract().doc;
    let mut checked = 0;
    let mut media_types = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let base = format!("/paths/{}/{method}", escape(path));
            media_types.push((format!("{base}/requestBody"), &operation["requestBody"]));
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                media_types.push((format!("{base}/responses/{status}"), response));
            }
        }
    }
    for (kind, section) in [("responses", "responses"), ("requestBodies", "requestBodies")] {
        for (name, value) in doc["components"][section].as_object().into_iter().flatten() {
            media_types.push((format!("/components/{kind}/{name}"), value));
        }
    }
    for (pointer, holder) in media_types {
        for (media, object) in holder["content"].as_object().into_iter().flatten() {
            let schema = format!("{pointer}/content/{}/schema", escape(media));
            let mut examples: Vec<&Value> = object.get("example").into_iter().collect();
            examples.extend(object["examples"].as_object().into_iter().flatten().map(|(_, e)| &e["value"]));
            for example in examples {
                contract().validate(&schema, example).unwrap_or_else(|e| panic!("example at {pointer}: {e}"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} examples");
}

#[test]
fn the_router_and_the_document_list_the_same_operations() {
    let routed: BTreeSet<(String, String)> =
        ROUTES.iter().map(|route| (route.method.as_str().to_owned(), route.pattern.to_owned())).collect();
    let documented = contract().operations();
    let awaiting: BTreeSet<(String, String)> =
        AWAITING_WEB.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes missing from openapi.yaml: {undocumented:?}");
    let landed: Vec<_> = awaiting.intersection(&routed).collect();
    assert!(landed.is_empty(), "routed now, so remove them from AWAITING_WEB: {landed:?}");
    let unrouted: Vec<_> = documented.difference(&routed).filter(|pair| !awaiting.contains(*pair)).collect();
    assert!(unrouted.is_empty(), "operations in openapi.yaml that no route serves: {unrouted:?}");
}

#[tokio::test]
async fn the_server_serves_the_document_without_credentials() {
    let app = spawn_app("", vec![]).await;
    let response = app.http.get(format!("{}/openapi.yaml", app.base)).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let served = response.text().await.expect("text");
    assert_eq!(served, std::fs::read_to_string(DOCUMENT_PATH).expect("file"), "the binary embeds the file");
    for pair in AWAITING_WEB {
        let (status, body) = app.post_json(pair.1, "", &json!({})).await;
        assert_eq!((status, &body["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")), "{pair:?}");
    }
}

const RULES: &str = r#"
[buyers.filters]
states = ["CA"]
[buyers.returns]
rate_cap_percent = "0"
"#;

#[tokio::test]
async fn every_answer_matches_the_document() {
    // Ranked by expected value so the audit trails carry `return_rate` and `expected_value` to check too.
    let campaign = "bid_ttl_s = 2\nranking = \"expected_value\"";
    let closed = TestBuyer::bidding("closed", "2.00").with("paused = true\n[buyers.returns]\nenabled = false");
    let app = spawn_app(campaign, vec![TestBuyer::bidding("bidder", "8.00").with(RULES), closed]).await;
    let c = Checked::new(&app);
    every_role_is_refused_without_its_key(&c).await;
    every_body_is_checked(&c).await;
    wrong_methods_and_unknown_ids(&c).await;
    let leads = seller_calls(&c).await;
    buyer_calls(&c, &leads).await;
    operator_calls(&c, &leads).await;
    probes(&c).await;
    pages(&c).await;

    let seen = c.seen.into_inner();
    let mut missing = Vec::new();
    for (method, path) in contract().operations() {
        let operation = &contract().doc["paths"][&path][method.to_lowercase()];
        let id = operation["operationId"].as_str().expect("id").to_owned();
        for status in operation["responses"].as_object().expect("responses").keys() {
            let produced = seen.contains(&Seen { operation: id.clone(), status: status.clone() });
            // An entry naming this operation must stay true; a `*` entry may be produced on some operations.
            let listed = NOT_PRODUCED.iter().any(|(op, st, _)| *op == id && (*st == "*" || st == status));
            assert!(!(produced && listed), "{id} {status} is produced: remove it from NOT_PRODUCED");
            if !produced && !not_produced(&id, status) {
                missing.push(format!("{id} {status}"));
            }
        }
    }
    assert!(missing.is_empty(), "documented but never produced (test it or list it in NOT_PRODUCED): {missing:?}");
}

/// Every secured operation, called without a key and with each other role's key: 401.
async fn every_role_is_refused_without_its_key(c: &Checked<'_>) {
    let keys = [("sellerKey", SELLER_KEY), ("buyerKey", "bk_bidder"), ("adminToken", ADMIN_TOKEN)];
    for (method, path) in contract().operations() {
        let operation = &contract().doc["paths"][&path][method.to_lowercase()];
        let Some(scheme) = operation["security"][0].as_object().and_then(|r| r.keys().next().cloned()) else {
            continue;
        };
        let concrete = path.replace("{ping_id}", "p_0").replace("{lead_id}", "l_0").replace("{id}", "x");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let (status, _) = c.call(method.clone(), &concrete, None, Body::None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a key");
        for (other, key) in keys.iter().filter(|(s, _)| *s != scheme) {
            let (status, _) = c.call(method.clone(), &concrete, Some(key), Body::None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with the {other}");
        }
    }
}

/// Every operation that reads a body, sent a body that is not JSON, not an object, not declared as JSON and
/// too large.
async fn every_body_is_checked(c: &Checked<'_>) {
    let posts = [
        ("/v1/ping", SELLER_KEY),
        ("/v1/post", SELLER_KEY),
        ("/v1/leads", SELLER_KEY),
        ("/v1/buyer/pause", "bk_bidder"),
        ("/v1/buyer/resume", "bk_bidder"),
        ("/v1/returns", "bk_bidder"),
        ("/admin/buyers/bidder/pause", ADMIN_TOKEN),
        ("/admin/buyers/bidder/resume", ADMIN_TOKEN),
        ("/admin/buyers/bidder/deposits", ADMIN_TOKEN),
        ("/admin/returns/r_0/approve", ADMIN_TOKEN),
        ("/admin/returns/r_0/reject", ADMIN_TOKEN),
        ("/admin/sellers/acme/payouts", ADMIN_TOKEN),
    ];
    for (path, key) in posts {
        let cases: [(&str, Vec<u8>, StatusCode); 4] = [
            ("application/json", b"{oops".to_vec(), StatusCode::BAD_REQUEST),
            ("application/json", b"[1]".to_vec(), StatusCode::BAD_REQUEST),
            ("text/plain", b"{}".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ("application/json", vec![b' '; 5000], StatusCode::PAYLOAD_TOO_LARGE),
        ];
        for (content_type, bytes, expected) in cases {
            let (status, body) = c.call(Method::POST, path, Some(key), Body::Raw(content_type, bytes)).await;
            assert_eq!(status, expected, "{path} {content_type}: {body}");
        }
    }
    // An operation whose body was acceptable: the buyer is active again after this pause and resume.
    assert_eq!(c.post("/admin/buyers/bidder/pause", ADMIN_TOKEN, &json!({})).await.0, StatusCode::OK);
    assert_eq!(c.post("/admin/buyers/bidder/resume", ADMIN_TOKEN, &json!({})).await.0, StatusCode::OK);
}

/// Every documented path with a method it does not take (405 with `Allow`), and every `{…}` with an unknown id.
async fn wrong_methods_and_unknown_ids(c: &Checked<'_>) {
    let doc = &contract().doc;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if AWAITING_WEB.iter().any(|(_, p)| p == path) {
            continue;
        }
        let concrete = path.replace("{ping_id}", "p_0").replace("{lead_id}", "l_0").replace("{id}", "x");
        for wrong in ["get", "post", "put", "delete", "patch"].iter().filter(|m| item.get(**m).is_none()) {
            let method = Method::from_bytes(wrong.to_uppercase().as_bytes()).expect("method");
            let (status, _) = c.call(method, &concrete, Some(ADMIN_TOKEN), Body::None).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{wrong} {path}");
        }
    }
    let (status, _) = c.get("/admin/nowhere", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        "/admin/buyers/nobody",
        "/admin/buyers/nobody/statement",
        "/admin/sellers/nobody/statement",
        "/admin/pings/p_00000000000000000000000000000000",
        "/admin/leads/l_00000000000000000000000000000000",
    ] {
        assert_eq!(c.get(path, ADMIN_TOKEN).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/admin/buyers/nobody/pause", "/admin/buyers/nobody/resume", "/admin/returns/r_0/approve"] {
        assert_eq!(c.post(path, ADMIN_TOKEN, &json!({})).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for (path, body) in [
        ("/admin/returns/r_0/reject", json!({})),
        ("/admin/buyers/nobody/deposits", json!({"amount": "5.00"})),
        ("/admin/sellers/nobody/payouts", json!({"amount": "5.00"})),
    ] {
        assert_eq!(c.post(path, ADMIN_TOKEN, &body).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = c.post("/v1/post", SELLER_KEY, &json!({"ping_id": "p_0", "lead": ping_lead()})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = c.post("/v1/returns", "bk_bidder", &json!({"lead_id": "l_0", "reason": "duplicate"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Pings, posts and direct posts with each of their answers; returns three sold lead ids.
async fn seller_calls(c: &Checked<'_>) -> Vec<String> {
    let ping = |lead: Value| json!({"campaign": "auto", "lead": lead});
    let (status, error) = c.post("/v1/ping", SELLER_KEY, &json!({"campaign": "boats", "lead": ping_lead()})).await;
    assert_eq!((status, &error["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("unknown_campaign")));
    let (status, _) = c.post("/v1/ping", SELLER_KEY, &ping(json!({"postal_code": "123"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, no_bid) = c.post("/v1/ping", SELLER_KEY, &ping(json!({"state": "NV"}))).await;
    assert_eq!(no_bid["status"], "no_bid", "{no_bid}");
    let (_, unsold) =
        c.post("/v1/post", SELLER_KEY, &json!({"ping_id": no_bid["ping_id"], "lead": {"state": "NV"}})).await;
    assert_eq!(unsold["reason"], "all_buyers_rejected", "{unsold}");

    let mut leads = Vec::new();
    for n in 0..4 {
        let (status, bid) = c.post("/v1/ping", SELLER_KEY, &ping(ping_lead())).await;
        assert_eq!((status, &bid["status"]), (StatusCode::OK, &json!("bid")), "{bid}");
        let mut post = json!({"ping_id": bid["ping_id"], "lead": full_lead()});
        if n == 1 {
            // A lead that differs from its ping is refused and changes nothing.
            post["lead"]["age"] = json!(35);
            let (status, _) = c.post("/v1/post", SELLER_KEY, &post).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "lead_mismatch");
            post["lead"]["age"] = json!(34);
        }
        if n == 0 {
            post["min_payout"] = json!("99.00");
            let (_, unsold) = c.post("/v1/post", SELLER_KEY, &post).await;
            assert_eq!(unsold["reason"], "below_min_payout", "{unsold}");
            continue;
        }
        post["lead"]["phone"] = json!(format!("415867010{n}"));
        post["lead"]["email"] = json!(format!("ada{n}@example.com"));
        let (_, sold) = c.post("/v1/post", SELLER_KEY, &post).await;
        assert_eq!(sold["status"], "sold", "{sold}");
        leads.push(sold["lead_id"].as_str().expect("lead id").to_owned());
        if n == 1 {
            post["lead"]["first_name"] = json!("Grace");
            let (status, _) = c.post("/v1/post", SELLER_KEY, &post).await;
            assert_eq!(status, StatusCode::CONFLICT, "already_posted");
        }
    }
    let mut direct = json!({"campaign": "auto", "lead": full_lead(), "source": "fb-1"});
    direct["lead"]["phone"] = json!("4158670199");
    direct["lead"]["email"] = json!("direct@example.com");
    let (_, sold) = c.post("/v1/leads", SELLER_KEY, &direct).await;
    assert_eq!(sold["status"], "sold", "{sold}");
    let (status, _) = c.post("/v1/leads", SELLER_KEY, &json!({"campaign": "boats", "lead": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, bid) = c.post("/v1/ping", SELLER_KEY, &ping(ping_lead())).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _) = c.post("/v1/post", SELLER_KEY, &json!({"ping_id": bid["ping_id"], "lead": full_lead()})).await;
    assert_eq!(status, StatusCode::GONE);

    // The `other` seller gets a limit of one ping a second through a reload: the second ping is 429.
    let config = c.app.config_text();
    let limited = config.replace("api_key = \"sk_other\"", "api_key = \"sk_other\"\nmax_pings_per_second = 1");
    c.app.write_config(&limited);
    assert_eq!(c.post("/admin/reload", ADMIN_TOKEN, &json!({})).await.0, StatusCode::OK);
    c.post("/v1/ping", OTHER_SELLER_KEY, &ping(ping_lead())).await;
    let (status, _) = c.post("/v1/ping", OTHER_SELLER_KEY, &ping(ping_lead())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    c.app.write_config("[server]\nlisten = 1");
    assert_eq!(c.post("/admin/reload", ADMIN_TOKEN, &json!({})).await.0, StatusCode::BAD_REQUEST);
    c.app.write_config(&config);
    assert_eq!(c.post("/admin/reload", ADMIN_TOKEN, &json!({})).await.0, StatusCode::OK);

    for path in ["/v1/seller/balance", "/v1/seller/returns", "/v1/seller/statement"] {
        assert_eq!(c.get(path, SELLER_KEY).await.0, StatusCode::OK, "{path}");
    }
    for path in
        ["/v1/seller/returns?since=yesterday", "/v1/seller/statement?from=2027-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"]
    {
        assert_eq!(c.get(path, SELLER_KEY).await.0, StatusCode::BAD_REQUEST, "{path}");
    }
    leads
}

/// The buyer portal, and returns in each status.
async fn buyer_calls(c: &Checked<'_>, leads: &[String]) {
    let key = "bk_bidder";
    for path in ["/v1/buyer/balance", "/v1/buyer/leads?limit=2", "/v1/buyer/return-policy", "/v1/buyer/status"] {
        assert_eq!(c.get(path, key).await.0, StatusCode::OK, "{path}");
    }
    for path in ["/v1/buyer/leads?limit=0", "/v1/buyer/statement?from=never"] {
        assert_eq!(c.get(path, key).await.0, StatusCode::BAD_REQUEST, "{path}");
    }
    let file = |lead: &str, reason: &str| json!({"lead_id": lead, "reason": reason, "note": "checked"});
    let (status, pending) = c.post("/v1/returns", key, &file(&leads[0], "wrong_number")).await;
    assert_eq!((status, &pending["status"]), (StatusCode::CREATED, &json!("pending_review")), "{pending}");
    let (_, rejected) = c.post("/v1/returns", key, &file(&leads[1], "no_answer")).await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    let (status, _) = c.post("/v1/returns", key, &file(&leads[1], "duplicate")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = c.post("/v1/returns", key, &file(&leads[2], "not_a_reason")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.post("/v1/returns", "bk_closed", &file(&leads[2], "duplicate")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/v1/buyer/returns", key).await.0, StatusCode::OK);
    assert_eq!(c.get("/v1/buyer/statement", key).await.0, StatusCode::OK);

    // A buyer lifts only its own pause.
    assert_eq!(c.post("/v1/buyer/pause", key, &json!({"note": "lunch"})).await.0, StatusCode::OK);
    assert_eq!(c.post("/v1/buyer/resume", key, &json!({})).await.0, StatusCode::OK);
    assert_eq!(c.post("/admin/buyers/bidder/pause", ADMIN_TOKEN, &json!({})).await.0, StatusCode::OK);
    assert_eq!(c.post("/v1/buyer/resume", key, &json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.post("/admin/buyers/bidder/resume", ADMIN_TOKEN, &json!({})).await.0, StatusCode::OK);
    let (status, _) = c.post("/v1/buyer/pause", key, &json!({"note": 7})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The operator API: every read, decisions, deposits and payouts with their refusals.
async fn operator_calls(c: &Checked<'_>, leads: &[String]) {
    let (_, pending) = c.get("/admin/returns?status=pending_review", ADMIN_TOKEN).await;
    let return_id = pending["returns"][0]["return_id"].as_str().expect("a pending return").to_owned();
    let approve = format!("/admin/returns/{return_id}/approve");
    let (status, approved) = c.post(&approve, ADMIN_TOKEN, &json!({"note": "ok"})).await;
    assert_eq!((status, &approved["status"]), (StatusCode::OK, &json!("approved")), "{approved}");
    assert_eq!(c.post(&approve, ADMIN_TOKEN, &json!({})).await.0, StatusCode::CONFLICT);
    let reject_decided = format!("/admin/returns/{return_id}/reject");
    assert_eq!(c.post(&reject_decided, ADMIN_TOKEN, &json!({})).await.0, StatusCode::CONFLICT);
    let (_, pending) = c.post("/v1/returns", "bk_bidder", &json!({"lead_id": leads[2], "reason": "fake_info"})).await;
    let reject = format!("/admin/returns/{}/reject", pending["return_id"].as_str().expect("return id"));
    assert_eq!(c.post(&reject, ADMIN_TOKEN, &json!({"note": "no"})).await.0, StatusCode::OK);
    assert_eq!(c.post(&reject, ADMIN_TOKEN, &json!({"note": 1})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(c.get("/admin/returns?status=lost", ADMIN_TOKEN).await.0, StatusCode::BAD_REQUEST);

    let (_, record) = c.get(&format!("/admin/leads/{}", leads[0]), ADMIN_TOKEN).await;
    assert_eq!(record["return"]["status"], "approved", "{record}");
    let (_, audit) =
        c.get(&format!("/admin/pings/{}", record["ping_id"].as_str().expect("ping id")), ADMIN_TOKEN).await;
    assert_eq!(audit["winner"], "bidder", "{audit}");
    for path in [
        "/admin/buyers",
        "/admin/buyers/bidder",
        "/admin/buyers/bidder/statement",
        "/admin/sellers/acme/statement",
        "/admin/returns",
        "/admin/ledger/accounts",
        "/admin/ledger/transactions?account=seller%3Aacme",
        "/admin/report",
        "/admin/config",
        "/admin/cluster",
    ] {
        assert_eq!(c.get(path, ADMIN_TOKEN).await.0, StatusCode::OK, "{path}");
    }
    let backwards = "?from=2027-01-01T00:00:00Z&to=2026-01-01T00:00:00Z";
    for path in ["/admin/report", "/admin/buyers/bidder/statement", "/admin/sellers/acme/statement"] {
        assert_eq!(c.get(&format!("{path}{backwards}"), ADMIN_TOKEN).await.0, StatusCode::BAD_REQUEST, "{path}");
    }
    let deposit = "/admin/buyers/bidder/deposits";
    assert_eq!(
        c.post(deposit, ADMIN_TOKEN, &json!({"amount": 25.5, "reference": "wire"})).await.0,
        StatusCode::CREATED
    );
    assert_eq!(c.post(deposit, ADMIN_TOKEN, &json!({"amount": "0.00"})).await.0, StatusCode::BAD_REQUEST);
    let payouts = "/admin/sellers/acme/payouts";
    assert_eq!(c.post(payouts, ADMIN_TOKEN, &json!({"amount": "1.00"})).await.0, StatusCode::CREATED);
    assert_eq!(c.post(payouts, ADMIN_TOKEN, &json!({"amount": "99999.00"})).await.0, StatusCode::CONFLICT);
    assert_eq!(c.post(payouts, ADMIN_TOKEN, &json!({})).await.0, StatusCode::BAD_REQUEST);
    // Sent again under an Idempotency-Key: the first answer again, then another amount under that key.
    for (path, amount, other) in [(deposit, "3.00", "4.00"), (payouts, "0.50", "0.60")] {
        let keyed = |amount| json!({"amount": amount});
        let send = |body: Value| async move {
            c.call(Method::POST, path, Some(ADMIN_TOKEN), Body::JsonWithHeader(&body, ("Idempotency-Key", "k-1"))).await
        };
        let first = send(keyed(amount)).await;
        assert_eq!(first.0, StatusCode::CREATED, "{path}: {first:?}");
        assert_eq!(send(keyed(amount)).await, first, "{path}");
        assert_eq!(send(keyed(other)).await.0, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    }
}

/// Health, readiness (both answers), metrics, the document, and a 431 through a raw socket.
async fn probes(c: &Checked<'_>) {
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.yaml"] {
        assert_eq!(c.call(Method::GET, path, None, Body::None).await.0, StatusCode::OK, "{path}");
    }
    // Stopping, as shutdown marks it first; then back.
    c.app.server.engine.readiness.set(Readiness::Stopping);
    let (status, body) = c.call(Method::GET, "/readyz", None, Body::None).await;
    assert_eq!((status, &body["reason"]), (StatusCode::SERVICE_UNAVAILABLE, &json!("stopping")));
    c.app.server.engine.readiness.set(Readiness::Ready);

    let mut stream = tokio::net::TcpStream::connect(c.app.server.addr).await.expect("connects");
    let head = format!("GET /healthz HTTP/1.1\r\nHost: gavel\r\nX-Filler: {}\r\n\r\n", "a".repeat(20_000));
    stream.write_all(head.as_bytes()).await.expect("written");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("an answer: {answer}"));
    let mut headers = reqwest::header::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("name");
            headers.insert(name, value.trim().parse().expect("value"));
        }
    }
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).expect("status");
    let status = StatusCode::from_u16(status).expect("status");
    c.record(contract().check(&Method::GET, "/healthz", status, &headers, body.as_bytes()));
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

/// The web pages' documented sign-in and sign-out (API.md section 10), seen as a browser sends them: form
/// bodies, a cookie, and redirects not followed (the answers are checked here, then recorded).
async fn pages(c: &Checked<'_>) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let url = |path: &str| format!("{}{path}", c.app.base);
    let form = "application/x-www-form-urlencoded";
    let mut answers = Vec::new();
    answers.push((Method::GET, "/login", http.get(url("/login")).send().await.expect("sent")));
    let wrong = http.post(url("/login")).header("content-type", form).body("key=wrong").send().await.expect("sent");
    answers.push((Method::POST, "/login", wrong));
    let right = http.post(url("/login")).header("content-type", form).body(format!("key={ADMIN_TOKEN}"));
    let signed_in = right.send().await.expect("sent");
    let cookie = signed_in.headers()["set-cookie"].to_str().expect("text").split(';').next().expect("pair").to_owned();
    answers.push((Method::POST, "/login", signed_in));
    let without_token = http.post(url("/logout")).header("cookie", &cookie).header("content-type", form).body("");
    answers.push((Method::POST, "/logout", without_token.send().await.expect("sent")));
    let page = http.get(url("/console/config")).header("cookie", &cookie).send().await.expect("sent");
    let html = page.text().await.expect("text");
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    let token = &html[start..start + 64];
    let signed_out = http.post(url("/logout")).header("cookie", &cookie).header("content-type", form);
    answers.push((Method::POST, "/logout", signed_out.body(format!("csrf={token}")).send().await.expect("sent")));
    let statuses: Vec<u16> = answers.iter().map(|(_, _, response)| response.status().as_u16()).collect();
    assert_eq!(statuses, [200, 401, 303, 403, 303]);
    for (method, path, response) in answers {
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.bytes().await.expect("body");
        c.record(contract().check(&method, path, status, &headers, &body));
    }
}
