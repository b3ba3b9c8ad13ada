//! Reading requests: credentials, the JSON body within its size limit, and envelope fields with errors that
//! name the field.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Request};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::config::ServerConfig;
use crate::domain::money::Money;

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The `Idempotency-Key` header of a deposit or payout, if sent (`ops` checks its form, for the pages too).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let key = value.to_str().map_err(|_| {
        ApiError::invalid_field("the Idempotency-Key header must be visible ASCII text, such as a UUID")
    })?;
    Ok(Some(key.to_owned()))
}

/// The header that makes a deposit or payout safe to send again.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Reads the body as a JSON object. An empty body reads as `{}` (operator actions need none); anything else
/// must be JSON, at most `server.max_body_bytes`, and arrive within `server.header_read_timeout` (a client
/// that sends its body slowly would otherwise hold its connection and, for a ping, its auction's time).
pub async fn read_object(request: Request<Incoming>, server: &ServerConfig) -> Result<Map<String, Value>, ApiError> {
    let (headers, bytes) = read_body(request, server).await?;
    // A header that is not text is no JSON media type.
    let content_type = headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or(""));
    object_from_body(&bytes, content_type)
}

/// Reads a whole body, at most `server.max_body_bytes`, arriving within `server.header_read_timeout`; with
/// the request's headers.
pub async fn read_body(request: Request<Incoming>, server: &ServerConfig) -> Result<(HeaderMap, Bytes), ApiError> {
    let limit = server.max_body_bytes;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let (parts, body) = request.into_parts();
    let bytes = tokio::time::timeout(server.header_read_timeout, read_limited(body, limit))
        .await
        .map_err(|_elapsed| ApiError::request_timeout(server.header_read_timeout))??;
    Ok((parts.headers, bytes))
}

/// The JSON object of a body already read within its limit, given its `Content-Type` (`None`: no header).
/// Pure, so the fuzz targets (`fuzz/`) drive exactly what a request goes through.
pub fn object_from_body(bytes: &[u8], content_type: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    // Only a body with no bytes at all is "no body": a body of whitespace is a JSON document that failed to
    // be one, and a client that meant `{}` but sent `\t` must hear so.
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    if !content_type.is_some_and(is_json_media_type) {
        return Err(ApiError::unsupported_media_type());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid_json("the body must be a JSON object")),
        Err(error) => Err(ApiError::invalid_json(format!("the body is not valid JSON: {error}"))),
    }
}

async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::body_too_large(limit)),
        Err(_) => Err(ApiError::invalid_json("the body could not be read")),
    }
}

/// `application/json`, with or without parameters, or any `+json` type.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Typed access to a request's top-level fields, with the contract's errors.
pub struct Envelope(pub Map<String, Value>);

impl Envelope {
    /// A required string field.
    pub fn required_str(&self, key: &str) -> Result<&str, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Err(ApiError::missing_field(key)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ApiError::invalid_field(format!("{key} must be a string"))),
        }
    }

    /// An optional string field.
    pub fn optional_str(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid_field(format!("{key} must be a string"))),
        }
    }

    /// A required JSON object field, taken out of the envelope.
    pub fn take_object(&mut self, key: &str) -> Result<Map<String, Value>, ApiError> {
        match self.0.remove(key) {
            None | Some(Value::Null) => Err(ApiError::missing_field(key)),
            Some(Value::Object(object)) => Ok(object),
            Some(_) => Err(ApiError::invalid_field(format!("{key} must be a JSON object"))),
        }
    }

    /// An optional positive integer.
    pub fn optional_positive_int(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v > 0 => Ok(Some(v)),
                _ => Err(ApiError::invalid_field(format!("{key} must be a positive integer"))),
            },
            Some(_) => Err(ApiError::invalid_field(format!("{key} must be a positive integer"))),
        }
    }

    /// An optional boolean, false when absent.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::invalid_field(format!("{key} must be true or false"))),
        }
    }

    /// An optional money amount (string or number, exact, rounded down to the cent).
    pub fn optional_money(&self, key: &str) -> Result<Option<Money>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => {
                Money::parse_json(value).map(Some).map_err(|why| ApiError::invalid_field(format!("{key} {why}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "bearer sk_1".parse().unwrap());
        assert_eq!(bearer(&headers), Some("sk_1"));
        headers.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn json_media_types() {
        for ok in ["application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", ""] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn only_a_body_with_no_bytes_is_no_body() {
        let json = Some("application/json");
        assert!(object_from_body(b"", json).unwrap().is_empty());
        assert!(object_from_body(b"", None).unwrap().is_empty());
        for blank in [&b"\t"[..], b" ", b"\r\n"] {
            let error = object_from_body(blank, json).unwrap_err();
            assert_eq!(error.code, "invalid_json", "{blank:?}");
        }
        assert_eq!(object_from_body(b" {} ", json).unwrap().len(), 0);
    }
}
