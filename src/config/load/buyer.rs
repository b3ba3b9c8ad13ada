//! `[[buyers]]`: one buyer's table and its sub-tables (filters, schedule, rules, caps, ramp, SLA, returns).

use std::collections::{HashMap, HashSet};

use hyper::header::{self, HeaderName, HeaderValue};
use toml::Value;

use super::reader::*;
use super::Registry;
use super::{
    Billing, Buyer, Caps, Filters, PostalCodes, Ramp, ResponseAdapter, ReturnPolicy, Rule, RuleOp, Schedule, Sla,
};

pub(super) fn read_buyer(mut s: Section, registry: &mut Registry, p: &mut Problems) -> Option<Buyer> {
    let owner = s.path.clone();
    let id = s.need("id", p).and_then(|f| f.id(p));
    let api_key = s.need("api_key", p).and_then(|f| f.secret(p));
    let campaigns = s.need("campaigns", p).and_then(|f| read_buyer_campaigns(&f, registry, p));
    let ping_url = read_ping_url(&mut s, p);
    let post_url = s.need("post_url", p).and_then(|f| f.url(p));
    let notice_url = s.optional("notice_url", |f| f.url(p));
    let fixed_price = s.optional("fixed_price", |f| f.positive_money(p));
    let timeout_ms = s.with_default("timeout_ms", 200, |f| f.uint(1, 60_000, p));
    let post_timeout_ms = s.with_default("post_timeout_ms", 3000, |f| f.uint(1, 120_000, p));
    let priority = s.with_default("priority", 0, |f| f.int(p));
    let weight = s.with_default("weight", 1, |f| f.u32_from(1, p));
    let billing = read_billing(&mut s, p);
    let dedupe_days = s.with_default("dedupe_days", 30, |f| f.u32_from(0, p));
    let paused = s.with_default("paused", false, |f| f.bool(p));
    let self_pause = s.with_default("self_pause", true, |f| f.bool(p));
    let headers = s.with_default("headers", Vec::new(), |f| read_headers(f, p));
    let field_map = s.with_default("field_map", HashMap::new(), |f| read_field_map(f, p));
    let static_fields = s.with_default("static_fields", serde_json::Map::new(), |f| read_static_fields(f, p));
    let response = s.with_default("response", ResponseAdapter::default(), |f| read_response(f.table(p)?, p));
    let filters = s.with_default("filters", Filters::default(), |f| read_filters(f.table(p)?, p));
    let caps = s.with_default("caps", Caps::default(), |f| read_caps(f.table(p)?, p));
    let ramp = s.optional("ramp", |f| read_ramp(f.table(p)?, p));
    let sla = s.with_default("sla", Sla::default(), |f| read_sla(f.table(p)?, p));
    let returns = s.with_default("returns", ReturnPolicy::default(), |f| read_returns(f.table(p)?, p));
    s.finish(p);
    registry.claim("buyers", &owner, id.as_deref(), api_key.as_ref(), p);
    Some(Buyer {
        id: id?,
        api_key: api_key?,
        campaigns: campaigns?,
        ping_url: ping_url?,
        post_url: post_url?,
        notice_url: notice_url?,
        fixed_price: fixed_price?,
        timeout_ms: timeout_ms?,
        post_timeout_ms: post_timeout_ms?,
        priority: priority?,
        weight: weight?,
        billing: billing?,
        dedupe_days: dedupe_days?,
        paused: paused?,
        self_pause: self_pause?,
        headers: headers?,
        field_map: field_map?,
        static_fields: static_fields?,
        response: response?,
        filters: filters?,
        caps: caps?,
        ramp: ramp?,
        sla: sla?,
        returns: returns?,
    })
}

pub(super) fn read_buyer_campaigns(f: &Field, registry: &Registry, p: &mut Problems) -> Option<Vec<String>> {
    let mut seen = HashSet::new();
    let ids = f.list(p, |item, p| match item.str(p)? {
        id if !registry.has_campaign(id) => item.fail(format!("no campaign has id \"{id}\""), p),
        // Named twice, the buyer would be offered each lead twice.
        id if !seen.insert(id) => item.fail(format!("\"{id}\" is listed twice"), p),
        id => Some(id.to_owned()),
    })?;
    f.non_empty(ids, p)
}

/// Fixed-price buyers bid without being pinged, so they have no ping URL; every other buyer needs one.
pub(super) fn read_ping_url(s: &mut Section, p: &mut Problems) -> Option<Option<hyper::Uri>> {
    let fixed_price = s.has("fixed_price");
    match (s.field("ping_url"), fixed_price) {
        (Some(f), false) => f.url(p).map(Some),
        (Some(f), true) => f.fail("remove it or fixed_price: a fixed-price buyer is never pinged", p),
        (None, false) => {
            p.add(&s.child("ping_url"), "is required (unless the buyer has a fixed_price)");
            None
        }
        (None, true) => Some(None),
    }
}

pub(super) fn read_billing(s: &mut Section, p: &mut Problems) -> Option<Billing> {
    let invoice = s.with_default("billing", false, |f| f.choice(&[("prepaid", false), ("invoice", true)], p));
    let credit_limit = s.field("credit_limit");
    match (invoice?, credit_limit) {
        (true, Some(f)) => f.money(p).map(|credit_limit| Billing::Invoice { credit_limit }),
        (true, None) => {
            p.add(&s.child("credit_limit"), "is required with billing = \"invoice\"");
            None
        }
        (false, Some(f)) => f.fail("only applies with billing = \"invoice\"; remove it", p),
        (false, None) => Some(Billing::Prepaid),
    }
}

/// Headers the HTTP client must own: a wrong one would corrupt the request rather than configure it.
pub(super) fn is_reserved_header(name: &HeaderName) -> bool {
    [header::HOST, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(name)
}

pub(super) fn read_headers(f: &Field, p: &mut Problems) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let read: Vec<Option<_>> = f.entries(p)?.iter().map(|(name, value)| read_header(name, value, p)).collect();
    read.into_iter().collect()
}

pub(super) fn read_header(name: &str, value: &Field, p: &mut Problems) -> Option<(HeaderName, HeaderValue)> {
    let name = match HeaderName::from_bytes(name.as_bytes()) {
        Ok(name) if is_reserved_header(&name) => return value.fail("is set by the engine itself; remove it", p),
        Ok(name) => name,
        Err(_) => return value.fail("is not a valid header name", p),
    };
    let text = match resolve_secret(value.str(p)?) {
        Ok(text) => text,
        Err(why) => return value.fail(why, p),
    };
    match HeaderValue::from_str(&text) {
        Ok(mut header_value) => {
            // Header values are often credentials; sensitive values print as "Sensitive" in Debug output.
            header_value.set_sensitive(true);
            Some((name, header_value))
        }
        Err(_) => value.fail("is not a valid header value (visible ASCII, no line breaks)", p),
    }
}

pub(super) fn read_field_map(f: &Field, p: &mut Problems) -> Option<HashMap<String, String>> {
    let read: Vec<Option<(String, String)>> = f
        .entries(p)?
        .iter()
        .map(|(key, value)| {
            let target = value.non_empty_str(p);
            if !is_lead_key(key) {
                return value.fail("is not a lead key (1 to 64 characters of a-z, 0-9 and '_')", p);
            }
            Some(((*key).to_owned(), target?))
        })
        .collect();
    read.into_iter().collect()
}

pub(super) fn read_static_fields(f: &Field, p: &mut Problems) -> Option<serde_json::Map<String, serde_json::Value>> {
    let read: Vec<Option<(String, serde_json::Value)>> =
        f.entries(p)?.iter().map(|(key, value)| Some(((*key).to_owned(), value.scalar(p)?))).collect();
    read.into_iter().collect()
}

pub(super) fn read_response(mut s: Section, p: &mut Problems) -> Option<ResponseAdapter> {
    let default = ResponseAdapter::default();
    let bid_path = s.with_default("bid_path", default.bid_path, |f| f.pointer(p));
    let accepted_path = s.with_default("accepted_path", default.accepted_path, |f| f.pointer(p));
    let accepted_values = s.with_default("accepted_values", default.accepted_values, |f| {
        f.list(p, Field::scalar).and_then(|values| f.non_empty(values, p))
    });
    let reason_path = s.with_default("reason_path", default.reason_path, |f| f.pointer(p));
    s.finish(p);
    Some(ResponseAdapter {
        bid_path: bid_path?,
        accepted_path: accepted_path?,
        accepted_values: accepted_values?,
        reason_path: reason_path?,
    })
}

pub(super) fn read_filters(mut s: Section, p: &mut Problems) -> Option<Filters> {
    let states = s.with_default("states", Vec::new(), |f| f.list(p, Field::state));
    let postal_codes = s.with_default("postal_codes", Vec::new(), |f| f.list(p, Field::postal_code));
    let exclude_postal_codes = s.with_default("exclude_postal_codes", Vec::new(), |f| f.list(p, Field::postal_code));
    let schedule = s.optional("schedule", |f| read_schedule(f.table(p)?, p));
    let rules = s.with_default("rules", Vec::new(), |f| f.list(p, |item, p| read_rule(item.table(p)?, p)));
    let required_fields = s.with_default("required_fields", Vec::new(), |f| f.list(p, Field::lead_key));
    let require_consent = s.with_default("require_consent", false, |f| f.bool(p));
    let max_lead_age_s = s.optional("max_lead_age_s", |f| f.uint(1, U32_MAX, p));
    s.finish(p);
    Some(Filters {
        states: states?,
        postal_codes: PostalCodes::new(postal_codes?),
        exclude_postal_codes: PostalCodes::new(exclude_postal_codes?),
        schedule: schedule?,
        rules: rules?,
        required_fields: required_fields?,
        require_consent: require_consent?,
        max_lead_age_s: max_lead_age_s?,
    })
}

pub(super) fn read_schedule(mut s: Section, p: &mut Problems) -> Option<Schedule> {
    let timezone = s.with_default("timezone", chrono_tz::Tz::UTC, |f| f.timezone(p));
    let all_days = WEEKDAYS.map(|(_, day)| day).to_vec();
    let days = s.with_default("days", all_days, |f| f.list(p, Field::weekday).and_then(|days| f.non_empty(days, p)));
    let open = s.need("open", p).and_then(|f| f.hhmm(p));
    let close = s.need("close", p).and_then(|f| f.hhmm(p));
    if open.is_some() && open == close {
        p.add(&s.child("close"), "must differ from open (a close before open runs past midnight)");
    }
    s.finish(p);
    let mut unique_days = Vec::new();
    for day in days? {
        if !unique_days.contains(&day) {
            unique_days.push(day);
        }
    }
    Some(Schedule { timezone: timezone?, days: unique_days, open: open?, close: close? })
}

pub(super) const RULE_OPS: [(&str, RuleOp); 9] = [
    ("eq", RuleOp::Eq),
    ("ne", RuleOp::Ne),
    ("gt", RuleOp::Gt),
    ("gte", RuleOp::Gte),
    ("lt", RuleOp::Lt),
    ("lte", RuleOp::Lte),
    ("in", RuleOp::In),
    ("not_in", RuleOp::NotIn),
    ("exists", RuleOp::Exists),
];

pub(super) fn read_rule(mut s: Section, p: &mut Problems) -> Option<Rule> {
    let field = s.need("field", p).and_then(|f| f.lead_key(p));
    let op = s.need("op", p).and_then(|f| f.choice(&RULE_OPS, p));
    let value = s.field("value");
    // Without a valid op there is no telling what the value should be.
    let value = op.and_then(|op| read_rule_value(&s, op, value, p));
    s.finish(p);
    Some(Rule::new(field?, op?, value?))
}

/// A rule's value is typed by its op: numbers to order, arrays for membership, nothing for `exists`.
pub(super) fn read_rule_value(
    s: &Section,
    op: RuleOp,
    value: Option<Field>,
    p: &mut Problems,
) -> Option<Option<serde_json::Value>> {
    let name = RULE_OPS.iter().find(|(_, o)| *o == op).map_or("?", |(name, _)| *name);
    let Some(f) = value else {
        if op == RuleOp::Exists {
            return Some(None);
        }
        p.add(&s.child("value"), format!("is required with op = \"{name}\""));
        return None;
    };
    match op {
        RuleOp::Exists => f.fail("must be left out with op = \"exists\"", p),
        RuleOp::Gt | RuleOp::Gte | RuleOp::Lt | RuleOp::Lte => match f.value {
            Value::Integer(_) | Value::Float(_) => f.scalar(p).map(Some),
            _ => f.wrong_type(&format!("a number with op = \"{name}\""), p),
        },
        RuleOp::In | RuleOp::NotIn => match f.value {
            Value::Array(_) => {
                let values = f.list(p, Field::scalar).and_then(|values| f.non_empty(values, p));
                values.map(|values| Some(serde_json::Value::Array(values)))
            }
            _ => f.wrong_type(&format!("an array with op = \"{name}\""), p),
        },
        RuleOp::Eq | RuleOp::Ne => f.scalar(p).map(Some),
    }
}

pub(super) fn read_caps(mut s: Section, p: &mut Problems) -> Option<Caps> {
    let hourly = s.optional("hourly", |f| f.u32_from(1, p));
    let daily = s.optional("daily", |f| f.u32_from(1, p));
    let weekly = s.optional("weekly", |f| f.u32_from(1, p));
    let monthly = s.optional("monthly", |f| f.u32_from(1, p));
    let daily_budget = s.optional("daily_budget", |f| f.positive_money(p));
    let monthly_budget = s.optional("monthly_budget", |f| f.positive_money(p));
    let concurrent_pings = s.optional("concurrent_pings", |f| f.u32_from(1, p));
    s.finish(p);
    Some(Caps {
        hourly: hourly?,
        daily: daily?,
        weekly: weekly?,
        monthly: monthly?,
        daily_budget: daily_budget?,
        monthly_budget: monthly_budget?,
        concurrent_pings: concurrent_pings?,
    })
}

pub(super) fn read_ramp(mut s: Section, p: &mut Problems) -> Option<Ramp> {
    let start = s.need("start", p).and_then(|f| f.date(p));
    let daily_start = s.need("daily_start", p).and_then(|f| f.u32_from(0, p));
    let daily_step = s.need("daily_step", p).and_then(|f| f.u32_from(0, p));
    s.finish(p);
    Some(Ramp { start: start?, daily_start: daily_start?, daily_step: daily_step? })
}

pub(super) fn read_sla(mut s: Section, p: &mut Problems) -> Option<Sla> {
    let d = Sla::default();
    let enabled = s.with_default("enabled", d.enabled, |f| f.bool(p));
    let window = s.with_default("window", d.window, |f| f.u32_from(1, p));
    let min_samples = s.with_default("min_samples", d.min_samples, |f| f.u32_from(1, p));
    let max_timeout_rate = s.with_default("max_timeout_rate", d.max_timeout_rate, |f| f.share(true, p));
    let max_error_rate = s.with_default("max_error_rate", d.max_error_rate, |f| f.share(true, p));
    let min_acceptance_rate = s.with_default("min_acceptance_rate", d.min_acceptance_rate, |f| f.share(true, p));
    let cooldown_s = s.with_default("cooldown_s", d.cooldown_s, |f| f.uint(1, U32_MAX, p));
    let probe_share = s.with_default("probe_share", d.probe_share, |f| f.share(false, p));
    if let (Some(min_samples), Some(window)) = (min_samples, window) {
        if min_samples > window {
            p.add(&s.child("min_samples"), format!("must not exceed window ({window})"));
        }
    }
    s.finish(p);
    Some(Sla {
        enabled: enabled?,
        window: window?,
        min_samples: min_samples?,
        max_timeout_rate: max_timeout_rate?,
        max_error_rate: max_error_rate?,
        min_acceptance_rate: min_acceptance_rate?,
        cooldown_s: cooldown_s?,
        probe_share: probe_share?,
    })
}

pub(super) fn read_returns(mut s: Section, p: &mut Problems) -> Option<ReturnPolicy> {
    let d = ReturnPolicy::default();
    let enabled = s.with_default("enabled", d.enabled, |f| f.bool(p));
    let window_days = s.with_default("window_days", d.window_days, |f| f.u32_from(1, p));
    let reasons = s.with_default("reasons", d.reasons, |f| f.list(p, Field::return_reason));
    let rate_cap_percent = s.with_default("rate_cap_percent", d.rate_cap_percent, |f| f.percent(p));
    let policy_note = s.optional("policy_note", |f| f.str(p).map(str::to_owned));
    if enabled == Some(true) && reasons.as_ref().is_some_and(Vec::is_empty) {
        p.add(&s.child("reasons"), "must name at least one reason (or set enabled = false)");
    }
    s.finish(p);
    Some(ReturnPolicy {
        enabled: enabled?,
        window_days: window_days?,
        reasons: reasons?,
        rate_cap_percent: rate_cap_percent?,
        policy_note: policy_note?,
    })
}
