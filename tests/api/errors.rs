//! Bad requests get the contract's error shape and status, and change nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

async fn raw(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = app.http.post(format!("{}{path}", app.base)).body(body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// (name, key, content type, body, expected status, expected code)
type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, String, StatusCode, &'a str);

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("error shape: {body}"))
}

#[tokio::test]
async fn malformed_requests_get_the_contract_status_and_code() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let json_type = Some("application/json");
    let lead = ping_lead().to_string();
    let cases: Vec<Case> = vec![
        ("not json", Some(SELLER_KEY), json_type, "{oops".into(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("array body", Some(SELLER_KEY), json_type, "[1]".into(), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            "no campaign",
            Some(SELLER_KEY),
            json_type,
            format!(r#"{{"lead": {lead}}}"#),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "no lead",
            Some(SELLER_KEY),
            json_type,
            r#"{"campaign": "auto"}"#.into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "lead not object",
            Some(SELLER_KEY),
            json_type,
            r#"{"campaign": "auto", "lead": [1]}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "campaign not string",
            Some(SELLER_KEY),
            json_type,
            format!(r#"{{"campaign": 7, "lead": {lead}}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "bad deadline",
            Some(SELLER_KEY),
            json_type,
            format!(r#"{{"campaign": "auto", "deadline_ms": -5, "lead": {lead}}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "bad source",
            Some(SELLER_KEY),
            json_type,
            format!(r#"{{"campaign": "auto", "source": "has space", "lead": {lead}}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "unknown campaign",
            Some(SELLER_KEY),
            json_type,
            format!(r#"{{"campaign": "boats", "lead": {lead}}}"#),
            StatusCode::BAD_REQUEST,
            "unknown_campaign",
        ),
        (
            "bad zip",
            Some(SELLER_KEY),
            json_type,
            r#"{"campaign": "auto", "lead": {"postal_code": "9410"}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_lead",
        ),
        (
            "nested lead",
            Some(SELLER_KEY),
            json_type,
            r#"{"campaign": "auto", "lead": {"car": {"make": "VW"}}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_lead",
        ),
        (
            "form body",
            Some(SELLER_KEY),
            Some("application/x-www-form-urlencoded"),
            "campaign=auto".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "too large",
            Some(SELLER_KEY),
            json_type,
            format!(r#"{{"campaign": "auto", "lead": {{"notes": "{}"}}}}"#, "x".repeat(5000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "no key",
            None,
            json_type,
            format!(r#"{{"campaign": "auto", "lead": {lead}}}"#),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong key",
            Some("sk_nope"),
            json_type,
            format!(r#"{{"campaign": "auto", "lead": {lead}}}"#),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "buyer key",
            Some("bk_buyer"),
            json_type,
            format!(r#"{{"campaign": "auto", "lead": {lead}}}"#),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "admin token",
            Some(ADMIN_TOKEN),
            json_type,
            format!(r#"{{"campaign": "auto", "lead": {lead}}}"#),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (name, key, content_type, body, status, expected) in cases {
        let (got, answer) = raw(&app, "/v1/ping", key, content_type, &body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(code(&answer), expected, "{name}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty(), "{name} has a message");
    }
    assert_eq!(app.sim("buyer").ping_count(), 0, "no refused request reached a buyer");
}

#[tokio::test]
async fn lead_errors_name_the_key() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let (status, error) = app.ping_with(json!({"state": "CA", "phone": "555-0100"}), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["error"]["message"].as_str().unwrap().contains("phone"), "{error}");
}

#[tokio::test]
async fn operator_endpoints_need_the_admin_token_and_unknown_ids_are_not_found() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    for key in [SELLER_KEY, "bk_buyer", "nope"] {
        let (status, body) = app.get_json(&format!("/admin/pings/{ping_id}"), key).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"), "{key}");
    }
    let (status, body) = app.get_json("/admin/pings/p_unknown", ADMIN_TOKEN).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app.get_json("/v2/nothing", ADMIN_TOKEN).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    let health = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn the_audit_trail_holds_no_pii() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let body = json!({"campaign": "auto", "lead": full_lead()});
    let (_, sold) = app.post_json("/v1/leads", SELLER_KEY, &body).await;
    let audit = app.audit(sold["ping_id"].as_str().unwrap()).await.to_string();
    for pii in ["8670100", "Ada", "Lovelace", "example.com"] {
        assert!(!audit.contains(pii), "audit leaks {pii:?}: {audit}");
    }
}
