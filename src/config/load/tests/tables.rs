//! The rules of whole tables: sell modes, floors, ping fields, URLs, billing, filters, schedules, rules, ramps.

use super::*;

#[test]
fn sell_mode_needs_max_buyers_only_when_shared() {
    assert_single_problems(&[
        (campaign_with("sell = \"shared\""), "campaigns[0].max_buyers: is required with sell = \"shared\" (2 to 5)"),
        (campaign_with("sell = \"shared\"\nmax_buyers = 6"), "campaigns[0].max_buyers: must be between 2 and 5"),
        (campaign_with("max_buyers = 3"), "campaigns[0].max_buyers: only applies with sell = \"shared\"; remove it"),
        (
            campaign_with("sell = \"split\""),
            "campaigns[0].sell: must be one of \"exclusive\", \"shared\" (found \"split\")",
        ),
    ]);
    let config = loaded(&campaign_with("sell = \"shared\"\nmax_buyers = 3\nauction = \"second_price\""));
    assert_eq!(config.campaigns[0].sell, SellMode::Shared { max_buyers: 3 });
    assert_eq!(config.campaigns[0].auction, AuctionKind::SecondPrice);
}

#[test]
fn expected_value_ranking_needs_an_auction_and_a_window_of_1_to_365_days() {
    assert_single_problems(&[
        (
            campaign_with("ranking = \"expected_value\"\ndistribution = \"waterfall\""),
            "campaigns[0].ranking: \"expected_value\" needs distribution = \"auction\" (found \"waterfall\")",
        ),
        (
            campaign_with("ranking = \"expected_value\"\ndistribution = \"weighted\""),
            "campaigns[0].ranking: \"expected_value\" needs distribution = \"auction\" (found \"weighted\")",
        ),
        (
            campaign_with("ranking = \"quality\""),
            "campaigns[0].ranking: must be one of \"bid\", \"expected_value\" (found \"quality\")",
        ),
        (campaign_with("return_rate_days = 0"), "campaigns[0].return_rate_days: must be between 1 and 365"),
        (campaign_with("return_rate_days = 366"), "campaigns[0].return_rate_days: must be between 1 and 365"),
    ]);
    let config =
        loaded(&campaign_with("ranking = \"expected_value\"\nreturn_rate_days = 365\nauction = \"second_price\""));
    assert_eq!((config.campaigns[0].ranking, config.campaigns[0].return_rate_days), (Ranking::ExpectedValue, 365));
    // By bid, any distribution goes, and the window is read but unused.
    loaded(&campaign_with("ranking = \"bid\"\ndistribution = \"round_robin\"\nreturn_rate_days = 1"));
}

#[test]
fn notice_url_is_an_optional_http_url_fixed_price_buyers_included() {
    assert_single_problems(&[
        (
            buyer_with("notice_url = \"buyer.example/notice\""),
            "buyers[0].notice_url: must be an http:// or https:// URL with a host, such as \"https://buyer.example/ping\"",
        ),
        (buyer_with("notice_url = 1"), "buyers[0].notice_url: must be a string, found an integer"),
    ]);
    let config = loaded(&buyer_with("notice_url = \"https://buyer.example/notice\""));
    let notice_url = config.buyers[0].notice_url.as_ref().map(ToString::to_string);
    assert_eq!(notice_url.as_deref(), Some("https://buyer.example/notice"));
    let fixed =
        replacing("ping_url = \"https://buyer.example/ping\"", "fixed_price = 7\nnotice_url = \"http://10.0.0.5/n\"");
    assert!(loaded(&fixed).buyers[0].notice_url.is_some());
}

#[test]
fn floor_must_not_exceed_max_bid() {
    assert_single_problems(&[(
        campaign_with("max_bid = \"0.50\""),
        "campaigns[0].floor: must not exceed max_bid (0.50)",
    )]);
    let equal = loaded(&campaign_with("max_bid = 1"));
    assert_eq!(equal.campaigns[0].max_bid, equal.campaigns[0].floor);
}

#[test]
fn ping_fields_must_not_carry_personal_data() {
    let line = "ping_fields = [\"state\", \"age\"]";
    let with = |fields: &str| replacing(line, &format!("ping_fields = {fields}"));
    assert_single_problems(&[
        (
            with("[\"state\", \"phone\"]"),
            "campaigns[0].ping_fields: must not name \"phone\" (send phone_sha256 instead)",
        ),
        (with("[\"email\"]"), "campaigns[0].ping_fields: must not name \"email\" (send email_sha256 instead)"),
        (
            with("[\"first_name\"]"),
            "campaigns[0].ping_fields: must not name \"first_name\" (personal data goes only in the post; \
             send phone_sha256 / email_sha256 to match leads)",
        ),
        (
            with("[\"zip code\"]"),
            "campaigns[0].ping_fields[0]: \"zip code\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')",
        ),
        (replacing(line, ""), "campaigns[0].ping_fields: is required"),
    ]);
    assert_eq!(problems(&with("[\"phone\", \"address\"]")).len(), 2);
    loaded(&with("[\"phone_sha256\", \"email_sha256\"]"));
}

#[test]
fn urls_must_be_absolute_http() {
    let line = "ping_url = \"https://buyer.example/ping\"";
    let expected = "buyers[0].ping_url: must be an http:// or https:// URL with a host, \
                    such as \"https://buyer.example/ping\"";
    let bad = ["ftp://buyer.example/ping", "buyer.example/ping", "/ping", "https://", "", "http://exa mple.com/"];
    let cases: Vec<(String, &str)> =
        bad.iter().map(|url| (replacing(line, &format!("ping_url = \"{url}\"")), expected)).collect();
    assert_single_problems(&cases);
    assert_single_problems(&[(
        replacing("post_url = \"https://buyer.example/post\"", "post_url = 5"),
        "buyers[0].post_url: must be a string, found an integer",
    )]);
    loaded(&replacing(line, "ping_url = \"http://10.0.0.5:9000/ping?src=gavel\""));
}

#[test]
fn fixed_price_buyers_have_no_ping_url() {
    let line = "ping_url = \"https://buyer.example/ping\"";
    let config = loaded(&replacing(line, "fixed_price = \"15.00\""));
    assert_eq!(config.buyers[0].ping_url, None);
    assert_eq!(config.buyers[0].fixed_price, Some(Money::from_cents(1500)));
    assert_single_problems(&[
        (
            buyer_with("fixed_price = 15"),
            "buyers[0].ping_url: remove it or fixed_price: a fixed-price buyer is never pinged",
        ),
        (replacing(line, ""), "buyers[0].ping_url: is required (unless the buyer has a fixed_price)"),
        (replacing(line, "fixed_price = 0"), "buyers[0].fixed_price: must be > 0"),
    ]);
}

#[test]
fn invoice_billing_needs_a_credit_limit() {
    let config = loaded(&buyer_with("billing = \"invoice\"\ncredit_limit = \"5000\""));
    assert_eq!(config.buyers[0].billing, Billing::Invoice { credit_limit: Money::from_cents(500_000) });
    assert_single_problems(&[
        (buyer_with("billing = \"invoice\""), "buyers[0].credit_limit: is required with billing = \"invoice\""),
        (
            buyer_with("credit_limit = \"10\""),
            "buyers[0].credit_limit: only applies with billing = \"invoice\"; remove it",
        ),
    ]);
}

#[test]
fn numbers_are_read_exactly() {
    let config = loaded(&config_with(
        "",
        "margin_percent = 12.5",
        "max_bid = 99.999",
        "static_fields = { rate = 1.1, n = 2, ok = true, s = \"x\" }\nresponse = { accepted_values = [\"ok\", 1] }",
    ));
    assert_eq!(config.sellers[0].margin_percent, Decimal::new(125, 1));
    assert_eq!(config.campaigns[0].max_bid, Money::from_cents(9999));
    let statics = serde_json::to_string(&config.buyers[0].static_fields).unwrap();
    assert_eq!(statics, r#"{"n":2,"ok":true,"rate":1.1,"s":"x"}"#);
    assert_eq!(config.buyers[0].response.accepted_values, [serde_json::json!("ok"), serde_json::json!(1)]);
}

#[test]
fn filters_are_normalized() {
    let config = loaded(&buyer_with(
        r#"field_map = { postal_code = "zip" }
[buyers.filters]
states = ["ca", "Dc"]
postal_codes = ["94107", "941"]
required_fields = ["age"]
require_consent = true
max_lead_age_s = 600"#,
    ));
    let buyer = &config.buyers[0];
    assert_eq!(buyer.field_map.get("postal_code").map(String::as_str), Some("zip"));
    assert_eq!(buyer.filters.states, ["CA", "DC"]);
    assert_eq!(buyer.filters.postal_codes.as_slice(), ["94107", "941"]);
    assert_eq!(buyer.filters.required_fields, ["age"]);
    assert!(buyer.filters.require_consent);
    assert_eq!(buyer.filters.max_lead_age_s, Some(600));
    assert_eq!(US_STATES.len(), 51);
}

fn schedule_config(schedule: &str) -> String {
    buyer_with(&format!("[buyers.filters]\nschedule = {{ {schedule} }}"))
}

#[test]
fn schedules_parse_with_defaults() {
    let config = loaded(&schedule_config(
        r#"timezone = "America/Los_Angeles", days = ["mon", "fri", "mon"], open = "08:00", close = "20:30""#,
    ));
    let schedule = config.buyers[0].filters.schedule.as_ref().unwrap();
    assert_eq!(schedule.timezone, chrono_tz::America::Los_Angeles);
    assert_eq!(schedule.days, [Weekday::Mon, Weekday::Fri]);
    assert_eq!(
        (schedule.open, schedule.close),
        (NaiveTime::from_hms_opt(8, 0, 0).unwrap(), NaiveTime::from_hms_opt(20, 30, 0).unwrap())
    );

    let overnight = loaded(&schedule_config(r#"open = "22:00", close = "06:00""#));
    let schedule = overnight.buyers[0].filters.schedule.as_ref().unwrap();
    assert_eq!(schedule.timezone, chrono_tz::Tz::UTC);
    assert_eq!(schedule.days.len(), 7);
}

#[test]
fn schedule_mistakes() {
    let path = "buyers[0].filters.schedule";
    let time_rule = "must be a time of day \"HH:MM\" such as \"08:00\"";
    assert_single_problems(&[
        (
            schedule_config(r#"timezone = "America/Los_Angles", open = "08:00", close = "20:00""#),
            &format!(
                "{path}.timezone: unknown timezone \"America/Los_Angles\" \
                 (use an IANA name such as \"America/New_York\")"
            ),
        ),
        (schedule_config(r#"open = "8:00", close = "20:00""#), &format!("{path}.open: {time_rule}")),
        (schedule_config(r#"open = "08:00", close = "24:00""#), &format!("{path}.close: {time_rule}")),
        (
            schedule_config(r#"open = "08:00", close = "08:00""#),
            &format!("{path}.close: must differ from open (a close before open runs past midnight)"),
        ),
        (schedule_config(r#"open = "08:00""#), &format!("{path}.close: is required")),
        (
            schedule_config(r#"days = ["monday"], open = "08:00", close = "20:00""#),
            &format!(
                "{path}.days[0]: must be one of \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\" \
                 (found \"monday\")"
            ),
        ),
        (schedule_config(r#"days = [], open = "08:00", close = "20:00""#), &format!("{path}.days: must not be empty")),
    ]);
}

fn rule_config(rule: &str) -> String {
    buyer_with(&format!("[buyers.filters]\nrules = [{{ {rule} }}]"))
}

#[test]
fn rule_values_are_typed_by_their_op() {
    let path = "buyers[0].filters.rules[0]";
    assert_single_problems(&[
        (
            rule_config(r#"field = "age", op = "gt", value = "21""#),
            &format!("{path}.value: must be a number with op = \"gt\", found a string"),
        ),
        (
            rule_config(r#"field = "state", op = "in", value = "CA""#),
            &format!("{path}.value: must be an array with op = \"in\", found a string"),
        ),
        (rule_config(r#"field = "state", op = "not_in", value = []"#), &format!("{path}.value: must not be empty")),
        (
            rule_config(r#"field = "state", op = "in", value = [["CA"]]"#),
            &format!("{path}.value[0]: must be a string, number or boolean, found an array"),
        ),
        (
            rule_config(r#"field = "age", op = "exists", value = 1"#),
            &format!("{path}.value: must be left out with op = \"exists\""),
        ),
        (rule_config(r#"field = "age", op = "eq""#), &format!("{path}.value: is required with op = \"eq\"")),
        (
            rule_config(r#"field = "age", op = "ne", value = [1]"#),
            &format!("{path}.value: must be a string, number or boolean, found an array"),
        ),
        (
            rule_config(r#"field = "age", op = "like", value = 1"#),
            &format!(
                "{path}.op: must be one of \"eq\", \"ne\", \"gt\", \"gte\", \"lt\", \"lte\", \"in\", \"not_in\", \
                 \"exists\" (found \"like\")"
            ),
        ),
        (
            rule_config(r#"field = "Age", op = "exists""#),
            &format!("{path}.field: \"Age\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')"),
        ),
        (rule_config(r#"op = "exists""#), &format!("{path}.field: is required")),
    ]);
    let config = loaded(&buyer_with(
        r#"[buyers.filters]
rules = [
{ field = "age", op = "lte", value = 2.5 },
{ field = "state", op = "in", value = ["CA", 1] },
{ field = "x", op = "exists" },
{ field = "ok", op = "eq", value = true },
]"#,
    ));
    let rules = &config.buyers[0].filters.rules;
    assert_eq!((rules[0].op, rules[0].value.clone()), (RuleOp::Lte, Some(serde_json::json!(2.5))));
    assert_eq!((rules[1].op, rules[1].value.clone()), (RuleOp::In, Some(serde_json::json!(["CA", 1]))));
    assert_eq!((rules[2].op, rules[2].value.clone()), (RuleOp::Exists, None));
    assert_eq!((rules[3].op, rules[3].value.clone()), (RuleOp::Eq, Some(serde_json::json!(true))));
}

#[test]
fn ramp_takes_a_date_or_a_date_string() {
    for start in ["2026-11-23", "\"2026-11-23\""] {
        let config = loaded(&buyer_with(&format!("[buyers.ramp]\nstart = {start}\ndaily_start = 10\ndaily_step = 0")));
        let ramp = config.buyers[0].ramp.as_ref().unwrap();
        assert_eq!(ramp.start, NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
        assert_eq!((ramp.daily_start, ramp.daily_step), (10, 0));
    }
}

#[test]
fn revision_is_the_sha256_of_the_bytes() {
    assert_eq!(revision_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let text = minimal();
    let config = loaded(&text);
    assert_eq!(config.revision, hex::encode(Sha256::digest(text.as_bytes())));
    assert_eq!(loaded(&text).revision, config.revision);
    let one_byte_changed = text.replacen("\"data\"", "\"datb\"", 1);
    assert_ne!(loaded(&one_byte_changed).revision, config.revision);
    assert_ne!(loaded(&format!("{text} ")).revision, config.revision);
}

#[test]
fn load_file_reports_an_unreadable_path() {
    let found = load_file(Path::new("/nonexistent/gavel.toml")).unwrap_err().0;
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("/nonexistent/gavel.toml: "));
}

#[test]
fn example_config_loads() {
    for (var, value) in [
        ("GAVEL_ADMIN_TOKEN", "example-admin"),
        ("GAVEL_SELLER_ACME_KEY", "example-sk-acme"),
        ("GAVEL_SELLER_NORTHWIND_KEY", "example-sk-northwind"),
        ("GAVEL_BUYER_BEST_KEY", "example-bk-best"),
        ("GAVEL_BUYER_BEST_AUTH", "Bearer example"),
        ("GAVEL_BUYER_SOLAR_KEY", "example-bk-solar"),
        ("GAVEL_BUYER_SOLAR_AUTH", "example-solar-auth"),
        ("GAVEL_BUYER_QUOTEHUB_KEY", "example-bk-quotehub"),
    ] {
        std::env::set_var(var, value);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let config = load_file(&path).unwrap_or_else(|e| panic!("config/example.toml:\n{e}"));
    assert_eq!((config.sellers.len(), config.campaigns.len(), config.buyers.len()), (2, 2, 3));
    assert_eq!(config.sellers[0].margin_percent, Decimal::new(125, 1));
    assert_eq!(config.campaigns[1].sell, SellMode::Shared { max_buyers: 3 });
    assert_eq!((config.campaigns[0].ranking, config.campaigns[0].return_rate_days), (Ranking::ExpectedValue, 30));
    let best = config.buyer("best-insurance").unwrap();
    assert!(best.notice_url.is_some());
    assert_eq!(best.filters.states, ["CA", "NV", "OR"]);
    assert_eq!(best.filters.rules.len(), 4);
    assert!(best.ramp.is_some());
    let solar = config.buyer("solar-direct").unwrap();
    assert!(solar.ping_url.is_none() && solar.fixed_price.is_some());
    assert!(matches!(solar.billing, Billing::Invoice { .. }));
    assert!(!solar.returns.enabled);
    let solar_buyers: Vec<&str> = config.buyers_of("home-solar").map(|(_, b)| b.id.as_str()).collect();
    assert_eq!(solar_buyers, ["solar-direct", "quote-hub"]);
    assert!(config.buyer("quote-hub").unwrap().paused);
}
