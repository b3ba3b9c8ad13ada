//! The loader's tests: defaults, how problems are reported, and the rules of single values.

use super::*;
use chrono::{NaiveDate, NaiveTime, Weekday};
use hyper::header;

use crate::domain::lead::US_STATES;
use crate::domain::money::Money;

/// A valid file with only the required keys; each `extra` lands at the end of its table. The buyer's extra
/// comes last in the file, so it may also open sub-tables or add more `[[sellers]]`, `[[buyers]]`…
fn config_with(server: &str, seller: &str, campaign: &str, buyer: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:8080"
data_dir = "data"
admin_token = "admin-secret"
{server}

[[sellers]]
id = "acme"
api_key = "sk_1"
{seller}

[[campaigns]]
id = "auto"
ping_fields = ["state", "age"]
floor = "1.00"
{campaign}

[[buyers]]
id = "best"
api_key = "bk_1"
campaigns = ["auto"]
ping_url = "https://buyer.example/ping"
post_url = "https://buyer.example/post"
{buyer}
"#
    )
}

fn minimal() -> String {
    config_with("", "", "", "")
}

fn server_with(extra: &str) -> String {
    config_with(extra, "", "", "")
}

fn seller_with(extra: &str) -> String {
    config_with("", extra, "", "")
}

fn campaign_with(extra: &str) -> String {
    config_with("", "", extra, "")
}

fn buyer_with(extra: &str) -> String {
    config_with("", "", "", extra)
}

/// The minimal file with one line of it replaced.
fn replacing(line: &str, with: &str) -> String {
    let text = minimal();
    assert!(text.contains(line), "the minimal config has no line {line:?}");
    text.replace(line, with)
}

fn loaded(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected the config to load, got:\n{e}"))
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e.0,
    }
}

/// Each case must produce exactly its one problem, so nothing spurious is reported alongside.
fn assert_single_problems(cases: &[(String, &str)]) {
    for (text, expected) in cases {
        assert_eq!(problems(text), vec![(*expected).to_owned()], "for config:\n{text}");
    }
}

#[test]
fn minimal_config_gets_every_default() {
    let config = loaded(&minimal());
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.server.data_dir, PathBuf::from("data"));
    assert_eq!(config.server.admin_token.expose(), "admin-secret");
    assert_eq!(config.server.max_body_bytes, 65_536);
    assert_eq!(config.server.header_read_timeout, std::time::Duration::from_secs(10));
    assert_eq!((config.server.max_connections, config.server.max_auctions_in_flight), (4096, None));
    assert_eq!(config.server.workers, None);

    let seller = &config.sellers[0];
    assert_eq!((seller.id.as_str(), seller.api_key.expose()), ("acme", "sk_1"));
    assert_eq!(seller.margin_percent, Decimal::ZERO);
    assert_eq!(seller.max_pings_per_second, None);

    let campaign = &config.campaigns[0];
    assert_eq!(campaign.ping_fields, ["state", "age"]);
    assert!(campaign.required_fields.is_empty());
    assert!(!campaign.require_consent);
    assert_eq!((campaign.ping_deadline_ms, campaign.min_buyer_ms, campaign.bid_ttl_s), (300, 20, 60));
    assert_eq!((campaign.floor, campaign.max_bid), (Money::from_cents(100), Money::from_cents(100_000)));
    assert_eq!(campaign.auction, AuctionKind::FirstPrice);
    assert_eq!(campaign.sell, SellMode::Exclusive);
    assert_eq!(campaign.distribution, Distribution::Auction);
    assert_eq!((campaign.ranking, campaign.return_rate_days), (Ranking::Bid, 30));

    let buyer = &config.buyers[0];
    assert_eq!(buyer.campaigns, ["auto"]);
    assert_eq!(buyer.ping_url.as_ref().map(ToString::to_string).as_deref(), Some("https://buyer.example/ping"));
    assert_eq!(buyer.post_url.to_string(), "https://buyer.example/post");
    assert_eq!(buyer.fixed_price, None);
    assert_eq!(buyer.notice_url, None);
    assert_eq!((buyer.timeout_ms, buyer.post_timeout_ms, buyer.priority, buyer.weight), (200, 3000, 0, 1));
    assert_eq!(buyer.billing, Billing::Prepaid);
    assert_eq!(buyer.dedupe_days, 30);
    assert!(!buyer.paused && buyer.self_pause);
    assert!(buyer.headers.is_empty() && buyer.field_map.is_empty() && buyer.static_fields.is_empty());
    assert_eq!(buyer.response, ResponseAdapter::default());
    assert_eq!(buyer.response.bid_path, "/bid");
    assert_eq!(buyer.response.accepted_path, "/accepted");
    assert_eq!(buyer.response.accepted_values, [serde_json::Value::Bool(true)]);
    assert_eq!(buyer.response.reason_path, "/reason");

    let filters = &buyer.filters;
    assert!(filters.states.is_empty() && filters.postal_codes.is_empty() && filters.exclude_postal_codes.is_empty());
    assert!(filters.schedule.is_none() && filters.rules.is_empty() && filters.required_fields.is_empty());
    assert!(!filters.require_consent && filters.max_lead_age_s.is_none());
    let caps = &buyer.caps;
    assert!(caps.hourly.is_none() && caps.daily.is_none() && caps.weekly.is_none() && caps.monthly.is_none());
    assert!(caps.daily_budget.is_none() && caps.monthly_budget.is_none() && caps.concurrent_pings.is_none());
    assert!(buyer.ramp.is_none());

    let sla = &buyer.sla;
    assert!(sla.enabled);
    assert_eq!((sla.window, sla.min_samples, sla.cooldown_s), (200, 20, 60));
    assert_eq!((sla.max_timeout_rate, sla.max_error_rate, sla.min_acceptance_rate), (0.5, 0.5, 0.0));
    assert_eq!(sla.probe_share, 0.1);

    let returns = &buyer.returns;
    assert!(returns.enabled);
    assert_eq!(returns.window_days, 7);
    assert_eq!(returns.reasons, super::super::DEFECT_REASONS);
    assert_eq!(returns.rate_cap_percent, Decimal::TEN);
    assert_eq!(returns.policy_note, None);

    let ids: Vec<&str> = config.buyers_of("auto").map(|(_, b)| b.id.as_str()).collect();
    assert_eq!(ids, ["best"]);
    assert!(config.seller_by_key("sk_1").is_some() && config.buyer_by_key("bk_1").is_some());
}

#[test]
fn many_mistakes_are_all_reported_with_their_paths() {
    let text = r#"
[server]
listen = "localhost"
data_dir = "data"
admin_token = "tok"
max_body_bytes = 100

[[sellers]]
id = "Acme"
api_key = "k1"
margin_percent = "150"

[[campaigns]]
id = "auto"
ping_fields = ["state", "phone"]
floor = "9.00"
max_bid = "5.00"
auction = "third_price"
ping_deadline_ms = 9000

[[buyers]]
id = "best"
api_key = "k2"
campaigns = ["auto", "nope"]
ping_url = "ftp://buyer.example/ping"
post_url = "https://buyer.example/post"
timeout_ms = "fast"
colour = "red"

[[buyers]]
id = "incomplete"

[[buyers]]
id = "capped"
api_key = "k3"
campaigns = ["auto"]
ping_url = "https://capped.example/ping"
post_url = "https://capped.example/post"

[buyers.caps]
daily = 0
"#;
    let expected = [
        r#"server.listen: must be an address and port such as "127.0.0.1:8080""#,
        "server.max_body_bytes: must be >= 1024",
        "sellers[0].id: must be 1 to 64 characters of a-z, 0-9, '_' and '-'",
        "sellers[0].margin_percent: must be from 0 to 100",
        r#"campaigns[0].ping_fields: must not name "phone" (send phone_sha256 instead)"#,
        r#"campaigns[0].ping_deadline_ms: must be between 1 and 5000"#,
        r#"campaigns[0].auction: must be one of "first_price", "second_price" (found "third_price")"#,
        "campaigns[0].floor: must not exceed max_bid (5.00)",
        r#"buyers[0].campaigns[1]: no campaign has id "nope""#,
        "buyers[0].ping_url: must be an http:// or https:// URL with a host, \
         such as \"https://buyer.example/ping\"",
        "buyers[0].timeout_ms: must be an integer, found a string",
        "buyers[0].colour: unknown key",
        "buyers[1].api_key: is required",
        "buyers[1].campaigns: is required",
        "buyers[1].ping_url: is required (unless the buyer has a fixed_price)",
        "buyers[1].post_url: is required",
        "buyers[2].caps.daily: must be > 0",
    ];
    assert_eq!(problems(text), expected);
}

#[test]
fn display_puts_one_problem_per_line() {
    let errors = ConfigErrors(vec!["a: x".to_owned(), "b: y".to_owned()]);
    assert_eq!(errors.to_string(), "a: x\nb: y");
}

#[test]
fn syntax_error_is_one_problem_with_line_and_column() {
    let found = problems("[server]\nlisten = \"127.0.0.1:8080\nport = 1\n");
    // The string runs to the end of line 2 (24 characters) without its closing quote.
    assert_eq!(found, ["line 2, column 25: invalid TOML: invalid basic string"]);
}

#[test]
fn unknown_keys_are_reported_at_every_depth() {
    assert_single_problems(&[
        (format!("colour = 1\n{}", minimal()), "colour: unknown key"),
        (server_with("port = 80"), "server.port: unknown key"),
        (seller_with("margin = 5"), "sellers[0].margin: unknown key"),
        (campaign_with("flor = \"1\""), "campaigns[0].flor: unknown key"),
        (buyer_with("colour = \"red\""), "buyers[0].colour: unknown key"),
        (buyer_with("response = { bid = \"/x\" }"), "buyers[0].response.bid: unknown key"),
        (buyer_with("[buyers.caps]\ndaly = 5"), "buyers[0].caps.daly: unknown key"),
        (buyer_with("[buyers.filters]\nstate = [\"CA\"]"), "buyers[0].filters.state: unknown key"),
        (
            buyer_with("[buyers.filters]\nschedule = { open = \"08:00\", close = \"20:00\", tz = \"UTC\" }"),
            "buyers[0].filters.schedule.tz: unknown key",
        ),
        (
            buyer_with("[buyers.filters]\nrules = [{ field = \"age\", op = \"exists\", valeu = 1 }]"),
            "buyers[0].filters.rules[0].valeu: unknown key",
        ),
        (
            buyer_with("[buyers.ramp]\nstart = 2026-11-23\ndaily_start = 1\ndaily_step = 1\nspeed = 2"),
            "buyers[0].ramp.speed: unknown key",
        ),
        (buyer_with("[buyers.sla]\nwindows = 5"), "buyers[0].sla.windows: unknown key"),
        (buyer_with("[buyers.returns]\nnote = \"x\""), "buyers[0].returns.note: unknown key"),
    ]);
}

#[test]
fn wrong_types_name_the_expected_type() {
    assert_single_problems(&[
        (server_with("max_body_bytes = \"64k\""), "server.max_body_bytes: must be an integer, found a string"),
        (server_with("header_read_timeout_ms = 50"), "server.header_read_timeout_ms: must be between 100 and 600000"),
        (server_with("max_connections = 0"), "server.max_connections: must be between 1 and 1000000"),
        (server_with("max_auctions_in_flight = 0"), "server.max_auctions_in_flight: must be between 1 and 1000000"),
        (server_with("workers = 0"), "server.workers: must be between 1 and 1024"),
        (
            replacing("admin_token = \"admin-secret\"", "admin_token = 5"),
            "server.admin_token: must be a string, found an integer",
        ),
        (
            format!("sellers = 5\n{}", minimal().replace("[[sellers]]\nid = \"acme\"\napi_key = \"sk_1\"", "")),
            "sellers: must be an array, found an integer",
        ),
        (buyer_with("paused = \"no\""), "buyers[0].paused: must be true or false, found a string"),
        (buyer_with("headers = \"x\""), "buyers[0].headers: must be a table, found a string"),
        (buyer_with("[buyers.caps]\ndaily = 1.5"), "buyers[0].caps.daily: must be an integer, found a float"),
        (buyer_with("filters = []"), "buyers[0].filters: must be a table, found an array"),
        (
            buyer_with("[buyers.sla]\nmax_error_rate = \"0.5\""),
            "buyers[0].sla.max_error_rate: must be a number, found a string",
        ),
        (campaign_with("max_bid = true"), "campaigns[0].max_bid: must be an amount such as \"12.50\", found a boolean"),
    ]);
}

#[test]
fn single_value_rules() {
    assert_single_problems(&[
        (seller_with("max_pings_per_second = 0"), "sellers[0].max_pings_per_second: must be > 0"),
        (
            seller_with("margin_percent = \"ten\""),
            "sellers[0].margin_percent: must be a percentage such as \"10\" or \"2.5\"",
        ),
        (replacing("id = \"acme\"", "id = \"\""), "sellers[0].id: must be 1 to 64 characters of a-z, 0-9, '_' and '-'"),
        (
            replacing("id = \"acme\"", &format!("id = \"{}\"", "a".repeat(65))),
            "sellers[0].id: must be 1 to 64 characters of a-z, 0-9, '_' and '-'",
        ),
        (campaign_with("min_buyer_ms = 300"), "campaigns[0].min_buyer_ms: must be less than ping_deadline_ms (300)"),
        (campaign_with("bid_ttl_s = 0"), "campaigns[0].bid_ttl_s: must be > 0"),
        (
            campaign_with("distribution = \"random\""),
            "campaigns[0].distribution: must be one of \"auction\", \"waterfall\", \"round_robin\", \
             \"weighted\" (found \"random\")",
        ),
        (campaign_with("max_bid = \"-5\""), "campaigns[0].max_bid: must not be negative"),
        (
            campaign_with("required_fields = [\"Phone\"]"),
            "campaigns[0].required_fields[0]: \"Phone\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')",
        ),
        (buyer_with("timeout_ms = 0"), "buyers[0].timeout_ms: must be between 1 and 60000"),
        (buyer_with("post_timeout_ms = 200000"), "buyers[0].post_timeout_ms: must be between 1 and 120000"),
        (buyer_with("weight = 0"), "buyers[0].weight: must be > 0"),
        (buyer_with("dedupe_days = -1"), "buyers[0].dedupe_days: must not be negative"),
        (replacing("campaigns = [\"auto\"]", "campaigns = []"), "buyers[0].campaigns: must not be empty"),
        (
            replacing("campaigns = [\"auto\"]", "campaigns = [\"auto\", \"auto\"]"),
            "buyers[0].campaigns[1]: \"auto\" is listed twice",
        ),
        (buyer_with("headers = { Host = \"x\" }"), "buyers[0].headers.Host: is set by the engine itself; remove it"),
        (buyer_with("headers = { \"Bad Name\" = \"x\" }"), "buyers[0].headers.Bad Name: is not a valid header name"),
        (
            buyer_with("headers = { X-Note = \"a\\nb\" }"),
            "buyers[0].headers.X-Note: is not a valid header value (visible ASCII, no line breaks)",
        ),
        (buyer_with("field_map = { postal_code = \"\" }"), "buyers[0].field_map.postal_code: must not be empty"),
        (
            buyer_with("field_map = { Zip = \"zip\" }"),
            "buyers[0].field_map.Zip: is not a lead key (1 to 64 characters of a-z, 0-9 and '_')",
        ),
        (
            buyer_with("static_fields = { tags = [1] }"),
            "buyers[0].static_fields.tags: must be a string, number or boolean, found an array",
        ),
        (buyer_with("static_fields = { big = inf }"), "buyers[0].static_fields.big: must be a finite number"),
        (
            buyer_with("response = { bid_path = \"bid\" }"),
            "buyers[0].response.bid_path: must be a JSON Pointer: \"\" or a path starting with \"/\" \
             such as \"/bid\"",
        ),
        (buyer_with("response = { accepted_values = [] }"), "buyers[0].response.accepted_values: must not be empty"),
        (
            buyer_with("[buyers.filters]\nstates = [\"XX\"]"),
            "buyers[0].filters.states[0]: \"XX\" is not a US state or DC (two letters such as \"CA\")",
        ),
        (
            buyer_with("[buyers.filters]\npostal_codes = [\"9410\"]"),
            "buyers[0].filters.postal_codes[0]: \"9410\" must be 5 digits (a ZIP code) or 3 digits (a ZIP prefix)",
        ),
        (
            buyer_with("[buyers.filters]\nexclude_postal_codes = [\"abcde\"]"),
            "buyers[0].filters.exclude_postal_codes[0]: \"abcde\" must be 5 digits (a ZIP code) \
             or 3 digits (a ZIP prefix)",
        ),
        (buyer_with("[buyers.filters]\nmax_lead_age_s = 0"), "buyers[0].filters.max_lead_age_s: must be > 0"),
        (buyer_with("[buyers.caps]\ndaily_budget = \"0\""), "buyers[0].caps.daily_budget: must be > 0"),
        (buyer_with("[buyers.caps]\nconcurrent_pings = -1"), "buyers[0].caps.concurrent_pings: must be > 0"),
        (buyer_with("[buyers.caps]\nhourly = 5000000000"), "buyers[0].caps.hourly: must be at most 4294967295"),
        (buyer_with("[buyers.ramp]\nstart = 2026-11-23\ndaily_start = 10"), "buyers[0].ramp.daily_step: is required"),
        (
            buyer_with("[buyers.ramp]\nstart = \"23/11/2026\"\ndaily_start = 10\ndaily_step = 5"),
            "buyers[0].ramp.start: must be a date such as 2026-11-23",
        ),
        (
            buyer_with("[buyers.ramp]\nstart = 2026-11-23T10:00:00\ndaily_start = 10\ndaily_step = 5"),
            "buyers[0].ramp.start: must be a date such as 2026-11-23",
        ),
        (
            buyer_with("[buyers.ramp]\nstart = 2026-11-23\ndaily_start = -1\ndaily_step = 5"),
            "buyers[0].ramp.daily_start: must not be negative",
        ),
        (buyer_with("[buyers.sla]\nmax_error_rate = 1.5"), "buyers[0].sla.max_error_rate: must be from 0 to 1"),
        (buyer_with("[buyers.sla]\nprobe_share = 0"), "buyers[0].sla.probe_share: must be > 0 and at most 1"),
        (buyer_with("[buyers.sla]\nwindow = 0"), "buyers[0].sla.window: must be > 0"),
        (buyer_with("[buyers.sla]\nmin_samples = 300"), "buyers[0].sla.min_samples: must not exceed window (200)"),
        (buyer_with("[buyers.sla]\ncooldown_s = 0"), "buyers[0].sla.cooldown_s: must be > 0"),
        (buyer_with("[buyers.returns]\nwindow_days = 0"), "buyers[0].returns.window_days: must be > 0"),
        (
            buyer_with("[buyers.returns]\nrate_cap_percent = \"-1\""),
            "buyers[0].returns.rate_cap_percent: must be from 0 to 100",
        ),
        (
            buyer_with("[buyers.returns]\nreasons = []"),
            "buyers[0].returns.reasons: must name at least one reason (or set enabled = false)",
        ),
    ]);
    let unknown_reason = problems(&buyer_with("[buyers.returns]\nreasons = [\"bogus\"]"));
    assert_eq!(unknown_reason.len(), 1);
    assert!(unknown_reason[0]
        .starts_with("buyers[0].returns.reasons[0]: \"bogus\" is not a return reason (one of wrong_number, "));
}

#[test]
fn env_secrets_are_resolved() {
    std::env::set_var("GAVEL_TEST_LOAD_PRESENT_ADMIN", "admin-from-env");
    std::env::set_var("GAVEL_TEST_LOAD_PRESENT_KEY", "bk_from_env");
    std::env::set_var("GAVEL_TEST_LOAD_PRESENT_AUTH", "Bearer from-env");
    let text = replacing("admin_token = \"admin-secret\"", "admin_token = \"env:GAVEL_TEST_LOAD_PRESENT_ADMIN\"")
        .replace("api_key = \"bk_1\"", "api_key = \"env:GAVEL_TEST_LOAD_PRESENT_KEY\"")
        + "headers = { Authorization = \"env:GAVEL_TEST_LOAD_PRESENT_AUTH\", X-Source = \"gavel\" }\n";
    let config = loaded(&text);
    assert_eq!(config.server.admin_token.expose(), "admin-from-env");
    assert_eq!(config.buyers[0].api_key.expose(), "bk_from_env");
    assert!(config.buyer_by_key("bk_from_env").is_some());
    let headers = &config.buyers[0].headers;
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0].0, header::AUTHORIZATION);
    assert_eq!(headers[0].1, "Bearer from-env");
    assert!(headers[0].1.is_sensitive());
    assert_eq!((headers[1].0.as_str(), headers[1].1.to_str().ok()), ("x-source", Some("gavel")));
    // Secrets never reach Debug output.
    assert!(!format!("{config:?}").contains("from-env"));
}

#[test]
fn missing_env_secrets_name_the_variable() {
    let text = replacing("admin_token = \"admin-secret\"", "admin_token = \"env:GAVEL_TEST_LOAD_MISSING_ADMIN\"")
        .replace("api_key = \"sk_1\"", "api_key = \"env:\"")
        + "headers = { Authorization = \"env:GAVEL_TEST_LOAD_MISSING_AUTH\" }\n";
    assert_eq!(
        problems(&text),
        [
            "server.admin_token: environment variable GAVEL_TEST_LOAD_MISSING_ADMIN is not set",
            "sellers[0].api_key: names no environment variable (write \"env:VAR_NAME\")",
            "buyers[0].headers.Authorization: environment variable GAVEL_TEST_LOAD_MISSING_AUTH is not set",
        ]
    );
    std::env::set_var("GAVEL_TEST_LOAD_EMPTY_ADMIN", "");
    let empty = replacing("admin_token = \"admin-secret\"", "admin_token = \"env:GAVEL_TEST_LOAD_EMPTY_ADMIN\"");
    assert_eq!(problems(&empty), ["server.admin_token: environment variable GAVEL_TEST_LOAD_EMPTY_ADMIN is empty"]);
}

#[test]
fn duplicate_ids_are_reported_per_kind() {
    let text = buyer_with(
        r#"
[[sellers]]
id = "acme"
api_key = "sk_2"

[[campaigns]]
id = "auto"
ping_fields = []
floor = 1

[[buyers]]
id = "best"
api_key = "bk_2"
campaigns = ["auto"]
ping_url = "https://other.example/ping"
post_url = "https://other.example/post"
"#,
    );
    assert_eq!(
        problems(&text),
        [
            r#"sellers[1].id: "acme" is already the id of sellers[0]"#,
            r#"campaigns[1].id: "auto" is already the id of campaigns[0]"#,
            r#"buyers[1].id: "best" is already the id of buyers[0]"#,
        ]
    );
    // The same id in different kinds is fine.
    loaded(&replacing("id = \"best\"", "id = \"acme\""));
}

#[test]
fn api_keys_are_unique_across_sellers_and_buyers_and_never_the_admin_token() {
    let text = buyer_with(
        r#"
[[sellers]]
id = "second"
api_key = "admin-secret"

[[buyers]]
id = "other"
api_key = "sk_1"
campaigns = ["auto"]
ping_url = "https://other.example/ping"
post_url = "https://other.example/post"
"#,
    );
    let found = problems(&text);
    assert_eq!(
        found,
        [
            "sellers[1].api_key: must not equal server.admin_token",
            "buyers[1].api_key: is the same key as sellers[0].api_key (every api key must be unique)",
        ]
    );
    assert!(found.iter().all(|p| !p.contains("admin-secret") && !p.contains("sk_1")));
}

mod tables;
