//! The web pages' rules over HTTP (API.md section 10): sign-in, sessions and their expiry, CSRF, roles, the
//! security headers, and that the JSON APIs never take the cookie. `browser.rs` drives the same pages in
//! Chromium.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{full_lead, spawn_app, TestApp, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

/// A browser without cookie jar or redirects, so every answer is seen as sent.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    pub cookie: Option<String>,
}

/// An answer: status, headers, body text.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        self.hidden("csrf")
    }

    /// The value of the page's (first) hidden field `name`.
    pub fn hidden(&self, name: &str) -> String {
        let field = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&field).unwrap_or_else(|| panic!("a form with a field {name}")) + field.len();
        let end = self.body[start..].find('"').expect("the value ends") + start;
        self.body[start..end].to_owned()
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A fresh connection each time: tests that move the clock must not meet a connection it closed.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Browser { http, base: app.base.clone(), cookie: None }
    }

    /// The same browser (its cookie) talking to another server: another node of a cluster.
    pub fn at(&self, app: &TestApp) -> Browser {
        Browser { http: self.http.clone(), base: app.base.clone(), cookie: self.cookie.clone() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", format!("gavel_session={cookie}")),
            None => request,
        };
        let response = request.send().await.expect("request sent");
        let (status, headers) = (response.status(), response.headers().clone());
        Page { status, headers, body: response.text().await.unwrap_or_default() }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_with(path, fields, &[]).await
    }

    pub async fn post_with(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.join("&"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// Signs in with `key`; the answer must be 303 to `home` with a session cookie.
    pub async fn sign_in(&mut self, key: &str, home: &str) -> Page {
        let page = self.post("/login", &[("key", key)]).await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, Some(home)), "{}", page.body);
        let cookie = page.headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()).expect("a session cookie");
        let token = cookie.strip_prefix("gavel_session=").and_then(|rest| rest.split(';').next()).expect("the cookie");
        self.cookie = Some(token.to_owned());
        page
    }

    /// A form's CSRF token, read from `path`.
    pub async fn csrf(&self, path: &str) -> String {
        self.get(path).await.csrf()
    }
}

pub async fn two_buyers() -> TestApp {
    spawn_app("", vec![TestBuyer::bidding("best", "10.00"), TestBuyer::bidding("other", "5.00")]).await
}

/// Sells one lead (to `best`, the higher bid); returns its lead id.
pub async fn sell(app: &TestApp, n: usize) -> String {
    let mut lead = full_lead();
    lead["phone"] = json!(format!("415867{:04}", 3000 + n));
    lead["email"] = json!(format!("web{n}@example.com"));
    let (status, sold) = app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": lead})).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    sold["lead_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_session_every_page_sends_to_the_sign_in_page() {
    let app = two_buyers().await;
    let browser = Browser::new(&app);
    for path in [
        "/",
        "/console",
        "/console/buyers/best",
        "/console/events",
        "/console/report.csv",
        "/portal",
        "/portal/leads.csv",
    ] {
        let page = browser.get(path).await;
        assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, Some("/login")), "{path}");
    }
    let forged = Browser { cookie: Some("0".repeat(64)), ..Browser::new(&app) };
    assert_eq!(forged.get("/console").await.location(), Some("/login"), "an unknown token is no session");
    let other_method = browser.send(browser.http.delete(format!("{}/console", app.base))).await;
    assert_eq!(other_method.status, StatusCode::METHOD_NOT_ALLOWED);
    let change = browser.post("/console/buyers/best/pause", &[("csrf", "x")]).await;
    assert_eq!(change.location(), Some("/login"));
    assert_eq!(app.buyer("best").await["state"], "active");
}

#[tokio::test]
async fn a_wrong_key_answers_401_with_the_form_and_sets_no_cookie() {
    let app = two_buyers().await;
    let browser = Browser::new(&app);
    let form = browser.get("/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"<label for="key">Key</label>"#) && form.body.contains(r#"name="key""#));
    for wrong in ["", "admin-secre", "bk_bes", "sk_acme_", "admin-secret-and-more"] {
        let page = browser.post("/login", &[("key", wrong)]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(page.headers.get(SET_COOKIE).is_none(), "{wrong:?}");
        assert!(page.body.contains("That key is not valid") && page.body.contains(r#"name="key""#));
    }
}

#[tokio::test]
async fn each_key_signs_in_to_its_own_pages_with_a_strict_cookie_that_holds_no_key() {
    let app = two_buyers().await;
    for (key, home) in [(ADMIN_TOKEN, "/console"), ("bk_best", "/portal"), (SELLER_KEY, "/portal")] {
        let mut browser = Browser::new(&app);
        let page = browser.sign_in(key, home).await;
        let cookie = page.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
        assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict") && cookie.contains("; Path=/"));
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        assert!(!cookie.contains(key), "{cookie}");
        assert_eq!(browser.cookie.as_ref().map(String::len), Some(64), "256 random bits");
        assert_eq!(browser.get(home).await.status, StatusCode::OK);
        assert_eq!(browser.get("/").await.location(), Some(home));
    }
    let behind_tls =
        Browser::new(&app).post_with("/login", &[("key", ADMIN_TOKEN)], &[("x-forwarded-proto", "https")]).await;
    assert!(behind_tls.headers.get(SET_COOKIE).unwrap().to_str().unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn a_change_without_its_csrf_token_is_403_and_changes_nothing() {
    let app = two_buyers().await;
    let mut operator = Browser::new(&app);
    operator.sign_in(ADMIN_TOKEN, "/console").await;
    let token = operator.csrf("/console/buyers").await;
    for fields in [vec![], vec![("csrf", "")], vec![("csrf", "0000")], vec![("csrf", &token[..63])]] {
        let page = operator.post("/console/buyers/best/pause", &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{fields:?}");
    }
    let mut other = Browser::new(&app);
    other.sign_in(ADMIN_TOKEN, "/console").await;
    let page = other.post("/console/buyers/best/pause", &[("csrf", &token)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "a token is bound to its own session");
    let cross_site = operator
        .post_with("/console/buyers/best/pause", &[("csrf", &token)], &[("sec-fetch-site", "cross-site")])
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    assert_eq!(app.buyer("best").await["state"], "active", "nothing changed");

    let page = operator.post("/console/buyers/best/pause", &[("csrf", &token)]).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, Some("/console/buyers/best?done=paused")));
    assert_eq!(app.buyer("best").await["state_reason"], "operator");
    let logout = operator.post("/logout", &[]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN, "signing out is a change too");
}

#[tokio::test]
async fn the_json_apis_never_take_the_cookie() {
    let app = two_buyers().await;
    let mut operator = Browser::new(&app);
    operator.sign_in(ADMIN_TOKEN, "/console").await;
    let mut buyer = Browser::new(&app);
    buyer.sign_in("bk_best", "/portal").await;
    let mut seller = Browser::new(&app);
    seller.sign_in(SELLER_KEY, "/portal").await;
    for (browser, path) in [
        (&operator, "/admin/buyers"),
        (&operator, "/admin/report"),
        (&buyer, "/v1/buyer/balance"),
        (&buyer, "/v1/buyer/leads"),
        (&seller, "/v1/seller/balance"),
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(page.body.contains("\"unauthorized\""), "{path}: {}", page.body);
    }
    let page = operator.post_with("/admin/buyers/best/pause", &[], &[]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_buyer_never_reaches_another_buyers_lead_or_the_console() {
    let app = two_buyers().await;
    let lead_id = sell(&app, 1).await;
    let mut best = Browser::new(&app);
    best.sign_in("bk_best", "/portal").await;
    let mut other = Browser::new(&app);
    other.sign_in("bk_other", "/portal").await;
    assert_eq!(best.get(&format!("/portal/leads/{lead_id}/return")).await.status, StatusCode::OK);

    let stranger = other.get(&format!("/portal/leads/{lead_id}/return")).await;
    let unknown = other.get("/portal/leads/l_00000000000000000000000000000000/return").await;
    assert_eq!((stranger.status, unknown.status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    let token = other.csrf("/portal").await;
    let filed =
        other.post(&format!("/portal/leads/{lead_id}/return"), &[("csrf", &token), ("reason", "wrong_number")]).await;
    assert_eq!(filed.status, StatusCode::NOT_FOUND);
    assert!(!other.get("/portal/leads").await.body.contains(&lead_id));
    assert!(!other.get("/portal/leads.csv").await.body.contains(&lead_id));

    let token = best.csrf("/portal").await;
    let filed =
        best.post(&format!("/portal/leads/{lead_id}/return"), &[("csrf", &token), ("reason", "wrong_number")]).await;
    let location = filed.location().expect("the answer's page").to_owned();
    assert!(location.starts_with("/portal/returns/r_"), "{location}");
    assert_eq!(best.get(&location).await.status, StatusCode::OK);
    assert_eq!(other.get(&location).await.status, StatusCode::NOT_FOUND);

    for path in ["/console", "/console/buyers/best", "/console/events"] {
        assert_eq!(best.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    let mut operator = Browser::new(&app);
    operator.sign_in(ADMIN_TOKEN, "/console").await;
    assert_eq!(operator.get("/portal").await.status, StatusCode::FORBIDDEN);
    let mut seller = Browser::new(&app);
    seller.sign_in(SELLER_KEY, "/portal").await;
    for path in ["/portal", "/portal/returns", "/portal/returns.csv", "/portal/statement.csv"] {
        let page = seller.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("best") && !page.body.contains("other"), "a seller never sees a buyer: {path}");
    }
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = two_buyers().await;
    let lead_id = sell(&app, 1).await;
    let anonymous = Browser::new(&app);
    let mut operator = Browser::new(&app);
    operator.sign_in(ADMIN_TOKEN, "/console").await;
    let mut buyer = Browser::new(&app);
    buyer.sign_in("bk_best", "/portal").await;
    let mut pages = vec![
        anonymous.get("/login").await,
        anonymous.post("/login", &[("key", "wrong")]).await,
        anonymous.get("/console").await,
        anonymous.get("/assets/gavel.css").await,
        anonymous.get("/assets/htmx-2.0.11.min.js").await,
        anonymous.get("/assets/nothing.js").await,
        buyer.get("/console").await,
        buyer.get("/portal/leads.csv").await,
    ];
    for path in [
        "/console",
        "/console/auctions",
        "/console/buyers",
        "/console/buyers/best",
        "/console/returns",
        "/console/report",
        "/console/report.csv",
        "/console/leads",
        &format!("/console/leads/{lead_id}"),
        "/console/ledger",
        "/console/ledger/buyer:best",
        "/console/config",
        "/console/nothing",
    ] {
        pages.push(operator.get(path).await);
    }
    for path in
        ["/portal", "/portal/leads", "/portal/returns", "/portal/statement", &format!("/portal/leads/{lead_id}/return")]
    {
        pages.push(buyer.get(path).await);
    }
    for page in &pages {
        let header = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let csp = header("content-security-policy");
        assert!(csp.starts_with("default-src 'self'") && !csp.contains("unsafe"), "{csp}");
        assert!(
            csp.contains("script-src 'self'")
                && csp.contains("style-src 'self'")
                && csp.contains("frame-ancestors 'none'")
        );
        assert_eq!((header("x-frame-options"), header("referrer-policy")), ("DENY", "no-referrer"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        if page.status == StatusCode::OK && header("content-type").starts_with("text/html") {
            assert!(!page.body.contains("style=") && !page.body.contains("<script>"), "no inline style or script");
            assert_eq!(header("cache-control"), "no-store");
        }
    }
}

#[tokio::test]
async fn sessions_end_after_twelve_hours_without_use() {
    let app = two_buyers().await;
    let mut buyer = Browser::new(&app);
    buyer.sign_in("bk_best", "/portal").await;
    if let Some(exchange) = &app.exchange {
        // Cluster mode: Redis keeps the session and expires it by its own clock, which a test cannot move.
        // What it must hold: 12 hours to live on sign-in, started again by every use.
        let client = redis::Client::open(exchange.redis.as_str()).unwrap();
        let mut redis = client.get_multiplexed_async_connection().await.unwrap();
        let pattern = format!("gavel:{}:session:*", exchange.name);
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let ttl = |redis: redis::aio::MultiplexedConnection| {
            let key = keys[0].clone();
            async move { redis::cmd("TTL").arg(key).query_async::<i64>(&mut redis.clone()).await.unwrap() }
        };
        assert!((43_190..=43_200).contains(&ttl(redis.clone()).await), "12 hours to live");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(ttl(redis.clone()).await <= 43_198);
        assert_eq!(buyer.get("/portal").await.status, StatusCode::OK);
        assert!(ttl(redis.clone()).await >= 43_199, "a use starts the 12 hours again");
        return;
    }
    let idle = |hours: u64, minutes: u64| async move {
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(hours * 3600 + minutes * 60)).await;
        tokio::time::resume();
    };
    idle(11, 59).await;
    assert_eq!(buyer.get("/portal").await.status, StatusCode::OK, "used within 12 hours");
    idle(11, 59).await;
    assert_eq!(buyer.get("/portal").await.status, StatusCode::OK, "each use starts the 12 hours again");
    idle(12, 1).await;
    assert_eq!(buyer.get("/portal").await.location(), Some("/login"), "12 idle hours end it");
}

#[tokio::test]
async fn signing_out_or_changing_the_key_ends_the_session() {
    let app = two_buyers().await;
    let mut buyer = Browser::new(&app);
    buyer.sign_in("bk_best", "/portal").await;
    let token = buyer.csrf("/portal").await;
    let out = buyer.post("/logout", &[("csrf", &token)]).await;
    assert_eq!((out.status, out.location()), (StatusCode::SEE_OTHER, Some("/login")));
    assert!(out.headers.get(SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(buyer.get("/portal").await.location(), Some("/login"), "the old cookie is dead on the server too");

    buyer.sign_in("bk_best", "/portal").await;
    app.write_config(&app.config_text().replace("bk_best", "bk_rotated"));
    let (status, _) = app.post_json("/admin/reload", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(buyer.get("/portal").await.location(), Some("/login"), "a rotated key ends its sessions");
    Browser::new(&app).sign_in("bk_rotated", "/portal").await;
}
