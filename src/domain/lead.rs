//! Leads: the flat JSON object a seller sends, validated and normalized (API.md section 1).
//!
//! Well-known keys are checked and rewritten into one normal form before anything else happens, so gates,
//! buyers, the ping/post consistency check and the duplicate check all see the same value.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Most keys a lead may carry.
pub const MAX_KEYS: usize = 100;
/// Longest key.
pub const MAX_KEY_LEN: usize = 64;
/// Longest string value, in characters.
pub const MAX_VALUE_CHARS: usize = 1024;
/// How far in the future `captured_at` may lie (clock skew between the seller and us).
const MAX_CAPTURED_AT_SKEW: Duration = Duration::minutes(5);

/// Keys that identify a person: never in a ping, never in the journal, never in a log.
pub const PII_KEYS: [&str; 5] = ["phone", "email", "first_name", "last_name", "address"];

/// A validated, normalized lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    fields: Map<String, Value>,
}

/// Why a lead was refused. The message names the key and what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LeadError {
    /// The offending key, when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl LeadError {
    fn key(key: &str, why: impl std::fmt::Display) -> LeadError {
        LeadError { key: Some(key.to_owned()), message: format!("lead.{key} {why}") }
    }

    fn whole(message: impl Into<String>) -> LeadError {
        LeadError { key: None, message: message.into() }
    }
}

impl Lead {
    /// Validates and normalizes a lead object. `now` bounds `captured_at`.
    pub fn parse(object: &Map<String, Value>, now: DateTime<Utc>) -> Result<Lead, LeadError> {
        if object.len() > MAX_KEYS {
            return Err(LeadError::whole(format!("lead has {} keys; at most {MAX_KEYS} are allowed", object.len())));
        }
        let mut fields = Map::new();
        for (key, value) in object {
            check_key(key)?;
            check_flat_value(key, value)?;
            if value.is_null() && is_well_known(key) {
                // A well-known key sent as null is treated as absent rather than as a malformed value.
                continue;
            }
            let normalized = normalize(key, value, now)?;
            // Normalizing can lengthen a value (lower-casing "İ" gives two characters), and the normalized
            // lead must itself be a valid lead: it is what a post is compared with and what is re-read.
            check_flat_value(key, &normalized)?;
            fields.insert(key.clone(), normalized);
        }
        let lead = Lead { fields };
        lead.check_hashes_agree()?;
        Ok(lead)
    }

    /// The normalized value of a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// The value of a key as a string, when it is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// True if the key is present (null counts as present for keys that are not well known).
    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// Every normalized field.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// True if the lead carries a consent token (`trustedform_cert_url` or `jornaya_leadid`, both validated).
    pub fn has_consent(&self) -> bool {
        self.contains("trustedform_cert_url") || self.contains("jornaya_leadid")
    }

    /// When the consumer submitted the lead, if the seller said.
    pub fn captured_at(&self) -> Option<DateTime<Utc>> {
        let text = self.get_str("captured_at")?;
        DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
    }

    /// SHA-256 (hex) of the normalized phone: given as `phone_sha256` or computed from `phone`.
    pub fn phone_sha256(&self) -> Option<String> {
        self.hash_of("phone", "phone_sha256")
    }

    /// SHA-256 (hex) of the normalized email: given as `email_sha256` or computed from `email`.
    pub fn email_sha256(&self) -> Option<String> {
        self.hash_of("email", "email_sha256")
    }

    fn hash_of(&self, plain_key: &str, hash_key: &str) -> Option<String> {
        if let Some(given) = self.get_str(hash_key) {
            return Some(given.to_owned());
        }
        self.get_str(plain_key).map(sha256_hex)
    }

    /// The projection that may leave the engine in a ping: only `keys`, and the phone and email hashes
    /// derived from the real values when a campaign asks for them and the seller did not send them.
    pub fn project(&self, keys: &[String]) -> Map<String, Value> {
        let mut out = Map::new();
        for key in keys {
            let value = match key.as_str() {
                "phone_sha256" => self.phone_sha256().map(Value::String),
                "email_sha256" => self.email_sha256().map(Value::String),
                _ => self.fields.get(key).cloned(),
            };
            if let Some(value) = value {
                out.insert(key.clone(), value);
            }
        }
        out
    }

    /// What the journal and delivery records may keep of a lead: the ping fields plus the SHA-256 of phone
    /// and email, never PII.
    pub fn record_projection(&self, ping_fields: &[String]) -> Map<String, Value> {
        let mut kept = self.project(ping_fields);
        for (key, hash) in [("phone_sha256", self.phone_sha256()), ("email_sha256", self.email_sha256())] {
            if let Some(hash) = hash {
                kept.insert(key.to_owned(), Value::String(hash));
            }
        }
        kept
    }

    /// A digest of one key's normalized value, for comparing a post with its ping without keeping the value.
    pub fn digest_of(&self, key: &str) -> Option<[u8; 32]> {
        self.fields.get(key).map(|value| Sha256::digest(value.to_string().as_bytes()).into())
    }

    /// A digest of the whole normalized lead (keys are sorted, so equal leads have equal digests).
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(Value::Object(self.fields.clone()).to_string().as_bytes()).into()
    }

    fn check_hashes_agree(&self) -> Result<(), LeadError> {
        for (plain, hashed) in [("phone", "phone_sha256"), ("email", "email_sha256")] {
            if let (Some(value), Some(given)) = (self.get_str(plain), self.get_str(hashed)) {
                if sha256_hex(value) != given {
                    return Err(LeadError::key(
                        hashed,
                        format_args!("is not the SHA-256 of the normalized {plain}; send the hash of the normalized value or leave it out"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256 of a text.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn check_key(key: &str) -> Result<(), LeadError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(LeadError::key(
            key,
            format_args!("is not a valid key: use 1 to {MAX_KEY_LEN} characters of a-z, 0-9 and _"),
        ))
    }
}

fn check_flat_value(key: &str, value: &Value) -> Result<(), LeadError> {
    match value {
        Value::Object(_) | Value::Array(_) => Err(LeadError::key(
            key,
            "must be a string, number, boolean or null: leads are flat, without nested objects or arrays",
        )),
        Value::String(s) if s.chars().count() > MAX_VALUE_CHARS => {
            Err(LeadError::key(key, format_args!("is longer than {MAX_VALUE_CHARS} characters")))
        }
        _ => Ok(()),
    }
}

fn is_well_known(key: &str) -> bool {
    matches!(
        key,
        "postal_code"
            | "state"
            | "phone"
            | "email"
            | "trustedform_cert_url"
            | "jornaya_leadid"
            | "captured_at"
            | "phone_sha256"
            | "email_sha256"
    )
}

fn normalize(key: &str, value: &Value, now: DateTime<Utc>) -> Result<Value, LeadError> {
    let rule: fn(&str) -> Result<String, &'static str> = match key {
        "postal_code" => normalize_postal_code,
        "state" => normalize_state,
        "phone" => normalize_phone,
        "email" => normalize_email,
        "trustedform_cert_url" => normalize_trustedform,
        "jornaya_leadid" => normalize_jornaya,
        "phone_sha256" | "email_sha256" => normalize_sha256,
        "captured_at" => return normalize_captured_at(key, value, now),
        _ => return Ok(value.clone()),
    };
    let text = match value {
        Value::String(s) => s.clone(),
        // A phone sent as a bare number is common and unambiguous; everything else must be text.
        Value::Number(n) if key == "phone" => n.to_string(),
        _ => return Err(LeadError::key(key, "must be a string")),
    };
    rule(&text).map(Value::String).map_err(|why| LeadError::key(key, why))
}

/// US ZIP: five digits, or ZIP+4 (`94107-1234` or `941071234`), kept as its five digits.
pub fn normalize_postal_code(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    // Byte lengths and offsets below are only character positions for ASCII text; slicing anything else at
    // byte 5 could split a character (found by the `lead` fuzz target).
    if !text.is_ascii() {
        return Err("must be a US ZIP code: 5 digits or ZIP+4");
    }
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let five = match text.len() {
        5 => text,
        9 => &text[..5],
        10 if text.as_bytes()[5] == b'-' => &text[..5],
        _ => return Err("must be a US ZIP code: 5 digits or ZIP+4"),
    };
    let rest = text.get(5..).unwrap_or("").trim_start_matches('-');
    if digits_only(five) && digits_only(rest) {
        Ok(five.to_owned())
    } else {
        Err("must be a US ZIP code: 5 digits or ZIP+4")
    }
}

/// The fifty states and DC.
pub const US_STATES: [&str; 51] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
];

/// A US state or DC as two letters, any case, upper-cased.
pub fn normalize_state(text: &str) -> Result<String, &'static str> {
    let upper = text.trim().to_ascii_uppercase();
    if US_STATES.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err("must be a two-letter US state or DC code such as \"CA\"")
    }
}

/// A callable NANP number as its ten digits (see API.md section 1 for the rules).
pub fn normalize_phone(text: &str) -> Result<String, &'static str> {
    const SHAPE: &str = "must be a 10-digit US phone number such as \"(415) 867-0100\", optionally with +1";
    if !text.chars().all(|c| c.is_ascii_digit() || " ()-.+".contains(c)) {
        return Err(SHAPE);
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.len() {
        10 => digits.as_str(),
        11 if digits.starts_with('1') => &digits[1..],
        _ => return Err(SHAPE),
    };
    let b = national.as_bytes();
    let (area, exchange, line) = (&national[0..3], &national[3..6], &national[6..10]);
    if b[0] < b'2' || b[3] < b'2' {
        return Err("is not a valid NANP number: the area code and the exchange must start with 2-9");
    }
    let is_n11 = |part: &str| part.as_bytes()[1..] == *b"11";
    if is_n11(area) || is_n11(exchange) {
        return Err("is not a valid NANP number: area code and exchange may not be N11 (211 to 911)");
    }
    if exchange == "555" && ("0100"..="0199").contains(&line) {
        return Err("is a fictional number (555-0100 to 555-0199)");
    }
    Ok(national.to_owned())
}

/// An email address, trimmed and lower-cased.
pub fn normalize_email(text: &str) -> Result<String, &'static str> {
    let email = text.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(email)
    } else {
        Err("must be an email address such as \"ada@example.com\"")
    }
}

fn normalize_trustedform(text: &str) -> Result<String, &'static str> {
    let valid = text
        .strip_prefix("https://cert.trustedform.com/")
        .is_some_and(|id| id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be a TrustedForm certificate URL: https://cert.trustedform.com/ followed by 40 hex characters")
    }
}

fn normalize_jornaya(text: &str) -> Result<String, &'static str> {
    let groups: Vec<&str> = text.split('-').collect();
    let valid = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if valid {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("must be a Jornaya LeadiD: a UUID such as \"123e4567-e89b-12d3-a456-426614174000\"")
    }
}

fn normalize_sha256(text: &str) -> Result<String, &'static str> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("must be a SHA-256 in hex (64 characters) of the normalized value")
    }
}

fn normalize_captured_at(key: &str, value: &Value, now: DateTime<Utc>) -> Result<Value, LeadError> {
    let text = value.as_str().ok_or_else(|| LeadError::key(key, "must be an RFC 3339 time string"))?;
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| LeadError::key(key, "must be an RFC 3339 time such as \"2026-11-22T10:00:00Z\""))?;
    if at.with_timezone(&Utc) > now + MAX_CAPTURED_AT_SKEW {
        return Err(LeadError::key(
            key,
            "is more than 5 minutes in the future; send the time the consumer submitted the lead",
        ));
    }
    Ok(value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn parse(value: Value) -> Result<Lead, LeadError> {
        Lead::parse(value.as_object().unwrap(), now())
    }

    #[test]
    fn well_known_keys_normalize() {
        let cases = [
            ("postal_code", json!("94107"), json!("94107")),
            ("postal_code", json!("94107-1234"), json!("94107")),
            ("postal_code", json!("941071234"), json!("94107")),
            ("state", json!("ca"), json!("CA")),
            ("state", json!("Dc"), json!("DC")),
            ("phone", json!("(415) 867-0100"), json!("4158670100")),
            ("phone", json!("+1 415.867.0100"), json!("4158670100")),
            ("phone", json!("14158670100"), json!("4158670100")),
            ("phone", json!(4158670100u64), json!("4158670100")),
            ("email", json!("  Ada@Example.COM "), json!("ada@example.com")),
            (
                "jornaya_leadid",
                json!("123E4567-E89B-12D3-A456-426614174000"),
                json!("123e4567-e89b-12d3-a456-426614174000"),
            ),
            ("phone_sha256", json!("A".repeat(64)), json!("a".repeat(64))),
            ("captured_at", json!("2026-11-22T02:00:00-08:00"), json!("2026-11-22T02:00:00-08:00")),
            ("age", json!(34), json!(34)),
            ("homeowner", json!(true), json!(true)),
            ("notes", json!(null), json!(null)),
        ];
        for (key, input, expected) in cases {
            let lead = parse(json!({ key: input })).unwrap_or_else(|e| panic!("{key}={input}: {e}"));
            assert_eq!(lead.get(key), Some(&expected), "{key}={input}");
        }
    }

    #[test]
    fn invalid_values_are_refused_naming_the_key() {
        let cases = [
            ("postal_code", json!("9410")),
            ("postal_code", json!("94107-12")),
            ("postal_code", json!(94107)),
            ("state", json!("XX")),
            ("state", json!("California")),
            ("phone", json!("415867010")),
            ("phone", json!("24158670100")),
            ("phone", json!("(115) 867-0100")),
            ("phone", json!("(415) 167-0100")),
            ("phone", json!("(911) 867-0100")),
            ("phone", json!("(415) 411-0100")),
            ("phone", json!("(415) 555-0100")),
            ("phone", json!("(415) 555-0199")),
            ("phone", json!("415-867-01OO")),
            ("email", json!("ada.example.com")),
            ("email", json!("ada@example")),
            ("email", json!("a da@example.com")),
            ("email", json!("ada@@example.com")),
            ("trustedform_cert_url", json!("https://cert.trustedform.com/abc")),
            ("trustedform_cert_url", json!(format!("http://cert.trustedform.com/{}", "a".repeat(40)))),
            ("jornaya_leadid", json!("not-a-uuid")),
            ("email_sha256", json!("abc")),
            ("captured_at", json!("yesterday")),
            ("captured_at", json!("2026-11-22T10:06:00Z")),
            ("nested", json!({"a": 1})),
            ("list", json!([1, 2])),
            ("long", json!("x".repeat(1025))),
            ("Bad-Key", json!(1)),
            (&*"k".repeat(65), json!(1)),
        ];
        for (key, input) in cases {
            let err = parse(json!({ key: input })).expect_err(&format!("{key}={input} should fail"));
            assert_eq!(err.key.as_deref(), Some(key), "{key}={input}: {err}");
            assert!(err.message.contains(key), "message names the key: {err}");
        }
    }

    #[test]
    fn a_postal_code_with_a_character_across_byte_five_is_refused_not_a_panic() {
        // Nine and ten bytes long, as ZIP+4 is, with a multi-byte character where the five digits end.
        for text in ["1234\u{e9}678", "123\u{addaf}45", "9410\u{20ac}12", "\u{e9}\u{e9}\u{e9}\u{e9}-"] {
            let err = parse(json!({ "postal_code": text })).expect_err(text);
            assert_eq!(err.key.as_deref(), Some("postal_code"), "{text}");
        }
    }

    #[test]
    fn a_value_that_normalizes_past_the_length_limit_is_refused() {
        // 1023 characters as sent; lower-casing turns each "İ" into "i" and a combining dot.
        let email = format!("{}@example.com", "\u{130}".repeat(1011));
        let err = parse(json!({ "email": email })).expect_err("over the limit once normalized");
        assert_eq!(err.key.as_deref(), Some("email"));
        let lead = parse(json!({ "email": format!("{}@example.com", "\u{130}".repeat(500)) })).unwrap();
        assert_eq!(Lead::parse(lead.fields(), now()), Ok(lead), "a normalized lead re-parses to itself");
    }

    #[test]
    fn phone_rules_accept_real_numbers_next_to_the_refused_ones() {
        for ok in ["(415) 555-0200", "(415) 555-0099", "212 867 5309", "(800) 210-0000"] {
            assert!(normalize_phone(ok).is_ok(), "{ok} is callable");
        }
    }

    #[test]
    fn captured_at_up_to_five_minutes_ahead_is_clock_skew() {
        assert!(parse(json!({"captured_at": "2026-11-22T10:05:00Z"})).is_ok());
    }

    #[test]
    fn too_many_keys_are_refused() {
        let object: Map<String, Value> = (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(Lead::parse(&object, now()).unwrap_err().message.contains("at most 100"));
    }

    #[test]
    fn null_well_known_key_is_absent() {
        let lead = parse(json!({"email": null, "state": "ca"})).unwrap();
        assert!(!lead.contains("email"));
    }

    #[test]
    fn hashes_must_agree_with_the_plain_values() {
        let hash = sha256_hex("4158670100");
        assert!(parse(json!({"phone": "415-867-0100", "phone_sha256": hash})).is_ok());
        let err = parse(json!({"phone": "415-867-0100", "phone_sha256": "0".repeat(64)})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("phone_sha256"));
    }

    #[test]
    fn projection_keeps_only_ping_fields_and_derives_hashes() {
        let lead = parse(json!({"postal_code": "94107", "phone": "415-867-0100", "email": "Ada@Example.com",
            "first_name": "Ada", "age": 34}))
        .unwrap();
        let keys: Vec<String> =
            ["postal_code", "age", "phone_sha256", "email_sha256", "absent"].map(String::from).into();
        let ping = lead.project(&keys);
        assert_eq!(
            Value::Object(ping),
            json!({"postal_code": "94107", "age": 34, "phone_sha256": sha256_hex("4158670100"),
                "email_sha256": sha256_hex("ada@example.com")})
        );
    }

    #[test]
    fn fingerprint_is_equal_for_equal_normalized_leads() {
        let a = parse(json!({"state": "ca", "phone": "(415) 867-0100"})).unwrap();
        let b = parse(json!({"phone": "4158670100", "state": "CA"})).unwrap();
        let c = parse(json!({"phone": "4158670101", "state": "CA"})).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.digest_of("state"), b.digest_of("state"));
    }

    #[test]
    fn consent_is_either_token() {
        assert!(parse(json!({"jornaya_leadid": "123e4567-e89b-12d3-a456-426614174000"})).unwrap().has_consent());
        assert!(!parse(json!({"age": 1})).unwrap().has_consent());
    }
}
