//! Authentication and authorization: each role's key works on its own endpoints only, each party sees only
//! its own objects (another party's are 404, exactly as unknown ones), and no secret is ever echoed back.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const BEST_KEY: &str = "bk_best";
const OTHER_BUYER_KEY: &str = "bk_other";

/// The role whose key an endpoint takes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Seller,
    Buyer,
    Operator,
}

/// Every authenticated endpoint of API.md sections 2, 4 and 5, with a body where it takes one.
fn endpoints() -> Vec<(Role, Method, &'static str, Value)> {
    let ping = json!({"campaign": "auto", "lead": ping_lead()});
    let none = Value::Null;
    vec![
        (Role::Seller, Method::POST, "/v1/ping", ping.clone()),
        (Role::Seller, Method::POST, "/v1/post", json!({"ping_id": "p_x", "lead": full_lead()})),
        (Role::Seller, Method::POST, "/v1/leads", ping),
        (Role::Seller, Method::GET, "/v1/seller/balance", none.clone()),
        (Role::Seller, Method::GET, "/v1/seller/returns", none.clone()),
        (Role::Seller, Method::GET, "/v1/seller/statement", none.clone()),
        (Role::Buyer, Method::GET, "/v1/buyer/balance", none.clone()),
        (Role::Buyer, Method::GET, "/v1/buyer/leads", none.clone()),
        (Role::Buyer, Method::GET, "/v1/buyer/return-policy", none.clone()),
        (Role::Buyer, Method::GET, "/v1/buyer/returns", none.clone()),
        (Role::Buyer, Method::GET, "/v1/buyer/status", none.clone()),
        (Role::Buyer, Method::GET, "/v1/buyer/statement", none.clone()),
        (Role::Buyer, Method::POST, "/v1/buyer/pause", json!({})),
        (Role::Buyer, Method::POST, "/v1/buyer/resume", json!({})),
        (Role::Buyer, Method::POST, "/v1/returns", json!({"lead_id": "l_x", "reason": "duplicate"})),
        (Role::Operator, Method::GET, "/admin/buyers", none.clone()),
        (Role::Operator, Method::GET, "/admin/buyers/best", none.clone()),
        (Role::Operator, Method::GET, "/admin/pings/p_x", none.clone()),
        (Role::Operator, Method::GET, "/admin/returns", none.clone()),
        (Role::Operator, Method::GET, "/admin/ledger/accounts", none.clone()),
        (Role::Operator, Method::GET, "/admin/ledger/transactions", none.clone()),
        (Role::Operator, Method::GET, "/admin/report", none.clone()),
        (Role::Operator, Method::GET, "/admin/buyers/best/statement", none.clone()),
        (Role::Operator, Method::GET, "/admin/sellers/acme/statement", none),
        (Role::Operator, Method::POST, "/admin/buyers/best/pause", json!({})),
        (Role::Operator, Method::POST, "/admin/buyers/best/resume", json!({})),
        (Role::Operator, Method::POST, "/admin/buyers/best/deposits", json!({"amount": "5.00"})),
        (Role::Operator, Method::POST, "/admin/returns/r_x/approve", json!({})),
        (Role::Operator, Method::POST, "/admin/returns/r_x/reject", json!({})),
        (Role::Operator, Method::POST, "/admin/sellers/acme/payouts", json!({"amount": "5.00"})),
    ]
}

/// Sends one request with exactly this `Authorization` header value (none when `None`).
async fn send(app: &TestApp, method: &Method, path: &str, body: &Value, authorization: Option<&str>) -> Exchange {
    let mut request = app.http.request(method.clone(), format!("{}{path}", app.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if !body.is_null() {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = format!("{:?}", response.headers());
    let text = response.text().await.unwrap_or_default();
    Exchange { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

struct Exchange {
    status: StatusCode,
    headers: String,
    body: Value,
    text: String,
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("error shape: {body}"))
}

async fn two_buyer_app() -> TestApp {
    spawn_app(
        "",
        vec![
            TestBuyer::bidding("best", "9.00").with(r#"headers = { Authorization = "Bearer buyer-endpoint-secret" }"#),
            TestBuyer::bidding("other", "5.00"),
        ],
    )
    .await
}

#[tokio::test]
async fn each_role_s_key_opens_only_its_own_endpoints() {
    let app = two_buyer_app().await;
    let key_of = |role| match role {
        Role::Seller => SELLER_KEY,
        Role::Buyer => BEST_KEY,
        Role::Operator => ADMIN_TOKEN,
    };
    // Near misses of real keys and malformed headers are as wrong as a stranger's key.
    let wrong: Vec<String> = vec![
        "Bearer sk_nope".into(),
        format!("Bearer {}", &SELLER_KEY[..SELLER_KEY.len() - 1]),
        format!("Bearer {SELLER_KEY}x"),
        format!("Bearer {}", ADMIN_TOKEN.to_uppercase()),
        format!("Bearer {}", &ADMIN_TOKEN[..5]),
        format!("Basic {SELLER_KEY}"),
        format!("Token {ADMIN_TOKEN}"),
        "Bearer".into(),
        "Bearer ".into(),
        String::new(),
    ];
    for (role, method, path, body) in endpoints() {
        let foreign = [Role::Seller, Role::Buyer, Role::Operator].into_iter().filter(|r| *r != role);
        let mut attempts: Vec<Option<String>> = foreign.map(|r| Some(format!("Bearer {}", key_of(r)))).collect();
        if role != Role::Seller {
            attempts.push(Some(format!("Bearer {OTHER_SELLER_KEY}")));
        }
        if role != Role::Buyer {
            attempts.push(Some(format!("Bearer {OTHER_BUYER_KEY}")));
        }
        attempts.extend(wrong.iter().cloned().map(Some));
        attempts.push(None);
        for authorization in &attempts {
            let answer = send(&app, &method, path, &body, authorization.as_deref()).await;
            assert_eq!(
                (answer.status, code(&answer.body)),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{method} {path} ({role:?}) with {authorization:?}: {}",
                answer.text
            );
        }
        // The right key gets past authentication (whatever the endpoint then says about the request). Only
        // reads are tried, so the refused writes above are known to have changed nothing.
        if method == Method::GET {
            let answer = send(&app, &method, path, &body, Some(&format!("Bearer {}", key_of(role)))).await;
            assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path} with its own key: {}", answer.text);
        }
    }
    assert_eq!(app.sim("best").ping_count() + app.sim("other").ping_count(), 0, "no refused ping reached a buyer");
    let best = app.buyer("best").await;
    assert_eq!((best["state"].as_str(), best["balance"].as_str()), (Some("active"), Some("10000.00")));
    let (_, accounts) = app.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    let seller_paid = accounts["accounts"].as_array().unwrap().iter().any(|a| a["id"] == "external:payouts");
    assert!(!seller_paid, "no refused payout was recorded: {accounts}");
}

#[tokio::test]
async fn another_party_s_objects_are_not_found_exactly_like_unknown_ones() {
    let app = two_buyer_app().await;
    // acme sells a lead to best, which files a return; acme also holds an open ping.
    let (status, sold) =
        app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": full_lead()})).await;
    assert_eq!((status, sold["status"].as_str()), (StatusCode::OK, Some("sold")), "{sold}");
    let lead_id = sold["lead_id"].as_str().unwrap().to_owned();
    let open_ping = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (status, filed) =
        app.post_json("/v1/returns", BEST_KEY, &json!({"lead_id": lead_id, "reason": "duplicate"})).await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");

    // The other seller cannot post acme's ping, and sees none of acme's money or returns.
    let post_as_other = |ping_id: String| {
        let body = json!({"ping_id": ping_id, "lead": full_lead()});
        let app = &app;
        async move { app.post_json("/v1/post", OTHER_SELLER_KEY, &body).await }
    };
    let foreign = post_as_other(open_ping.clone()).await;
    let unknown = post_as_other("p_000000000000000000000000".into()).await;
    assert_eq!(foreign.0, StatusCode::NOT_FOUND, "{}", foreign.1);
    assert_eq!(foreign, unknown, "a foreign ping reads exactly like an unknown one");
    assert_eq!(app.get_json("/v1/seller/returns", OTHER_SELLER_KEY).await.1, json!({"returns": []}));
    assert_eq!(app.get_json("/v1/seller/balance", OTHER_SELLER_KEY).await.1["balance"], "0.00");
    let statement = app.get_json("/v1/seller/statement", OTHER_SELLER_KEY).await.1;
    assert_eq!(statement["lines"], json!([]), "{statement}");
    // …while acme sees its return, without the buyer's identity.
    let acme_returns = app.get_json("/v1/seller/returns", SELLER_KEY).await.1;
    assert_eq!(acme_returns["returns"].as_array().unwrap().len(), 1, "{acme_returns}");
    assert!(!acme_returns.to_string().contains("best"), "a seller never sees its buyer: {acme_returns}");

    // The other buyer cannot return best's lead, and sees none of best's leads or returns.
    let return_as_other = |lead_id: String| {
        let body = json!({"lead_id": lead_id, "reason": "duplicate"});
        let app = &app;
        async move { app.post_json("/v1/returns", OTHER_BUYER_KEY, &body).await }
    };
    let foreign = return_as_other(lead_id.clone()).await;
    let unknown = return_as_other("l_000000000000000000000000".into()).await;
    assert_eq!((foreign.0, code(&foreign.1)), (StatusCode::NOT_FOUND, "not_found"), "404, not 403");
    assert_eq!(foreign, unknown, "a foreign lead reads exactly like an unknown one");
    assert_eq!(app.get_json("/v1/buyer/leads", OTHER_BUYER_KEY).await.1, json!({"leads": []}));
    assert_eq!(app.get_json("/v1/buyer/returns", OTHER_BUYER_KEY).await.1, json!({"returns": []}));
    let statement = app.get_json("/v1/buyer/statement", OTHER_BUYER_KEY).await.1;
    let kinds: Vec<&str> = statement["lines"].as_array().unwrap().iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds, ["deposit"], "only its own deposit: {statement}");
    assert_eq!(app.get_json("/v1/buyer/leads", BEST_KEY).await.1["leads"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_never_appear_in_answers() {
    let app = two_buyer_app().await;
    let (_, sold) = app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": full_lead()})).await;
    let ping_id = sold["ping_id"].as_str().expect("sold").to_owned();
    let secrets = [SELLER_KEY, OTHER_SELLER_KEY, BEST_KEY, OTHER_BUYER_KEY, ADMIN_TOKEN, "buyer-endpoint-secret"];
    let mut answers = Vec::new();
    // Refusals, with right and near-miss keys: the key presented is never echoed.
    for (_, method, path, body) in endpoints() {
        for presented in [format!("Bearer {SELLER_KEY}-typo"), format!("Bearer {ADMIN_TOKEN}")] {
            answers.push(send(&app, &method, path, &body, Some(&presented)).await);
        }
    }
    for bad in [json!({"campaign": "auto"}), json!({"campaign": "nope", "lead": ping_lead()}), json!([1])] {
        answers.push(send(&app, &Method::POST, "/v1/ping", &bad, Some(&format!("Bearer {SELLER_KEY}"))).await);
    }
    // Every operator view, including the audit trail and the buyer objects (which hold buyer settings).
    for path in ["/admin/buyers", "/admin/buyers/best", &format!("/admin/pings/{ping_id}"), "/admin/report"] {
        answers.push(send(&app, &Method::GET, path, &Value::Null, Some(&format!("Bearer {ADMIN_TOKEN}"))).await);
    }
    for path in ["/v1/buyer/status", "/v1/buyer/balance"] {
        answers.push(send(&app, &Method::GET, path, &Value::Null, Some(&format!("Bearer {BEST_KEY}"))).await);
    }
    for answer in &answers {
        for secret in secrets {
            assert!(!answer.text.contains(secret), "answer leaks {secret:?}: {}", answer.text);
            assert!(!answer.headers.contains(secret), "headers leak {secret:?}: {}", answer.headers);
        }
    }
    // The buyer's endpoint did receive its own header: the secret is kept, only never shown.
    let seen = &app.sim("best").pings()[0];
    let authorization = seen.headers.iter().find(|(name, _)| name == "authorization").map(|(_, v)| v.as_str());
    assert_eq!(authorization, Some("Bearer buyer-endpoint-secret"));
}
