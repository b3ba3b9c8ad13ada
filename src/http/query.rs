//! Query-string parameters: `since`, `from`, `to`, `limit`, `status`, `account`.

use chrono::{DateTime, Utc};
use hyper::Uri;

use super::error::ApiError;

/// The parameters of a request's query string, percent-decoded (`+` is kept: it is a time's offset sign).
pub struct Query(Vec<(String, String)>);

/// The `key=value` pairs of `a=1&b=2`, each side decoded by `decode`: one parser for query strings and for the
/// pages' form bodies, which differ only in what `+` means.
pub fn pairs(text: &str, decode: fn(&str) -> String) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

impl Query {
    pub fn of(uri: &Uri) -> Query {
        Query(pairs(uri.query().unwrap_or(""), percent_decode))
    }

    /// The value of `key`, if given (the first one when repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// An RFC 3339 time, if given.
    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(key)
            .map(|text| {
                DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                    ApiError::invalid_field(format!(
                        "{key} must be an RFC 3339 time such as 2026-11-01T00:00:00Z (write + as %2B)"
                    ))
                })
            })
            .transpose()
    }

    /// A whole number from 1 to `max`, or `default` when absent.
    pub fn limit(&self, key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::invalid_field(format!("{key} must be a whole number from 1 to {max}"))),
        }
    }
}

/// `%XX` escapes decoded to bytes, the rest as it is (invalid UTF-8 replaced).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_times_parsed() {
        let query = Query::of(&"/x?since=2026-11-01T00%3A00%3A00%2B02%3A00&limit=5&flag".parse().unwrap());
        assert_eq!(query.time("since").unwrap().unwrap().to_rfc3339(), "2026-10-31T22:00:00+00:00");
        assert_eq!(query.limit("limit", 100, 1000).unwrap(), 5);
        assert_eq!(query.get("flag"), Some(""));
        assert_eq!(query.limit("missing", 100, 1000).unwrap(), 100);
        assert!(query.limit("flag", 100, 1000).is_err());
        let raw = Query::of(&"/x?from=2026-11-01T00:00:00Z".parse().unwrap());
        assert!(raw.time("from").unwrap().is_some());
        assert!(Query::of(&"/x?from=yesterday".parse().unwrap()).time("from").is_err());
    }
}
