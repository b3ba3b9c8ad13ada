//! What the pages read from a request: the session cookie, and forms (`application/x-www-form-urlencoded`).

use hyper::header::{COOKIE, HOST, ORIGIN};
use hyper::HeaderMap;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "gavel_session";

/// The session token from the `Cookie` header(s), if any.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value that starts a session. `Secure` when the browser reached us over TLS, which behind
/// a TLS-terminating proxy only its `X-Forwarded-Proto` can tell (see [`over_tls`]). No `Max-Age`: the
/// server ends the session after its idle time, the browser when it closes.
pub fn session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// The `Set-Cookie` value that ends the session in the browser.
pub fn expired_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// Whether the browser's connection was TLS. The server speaks plain HTTP, so TLS is a proxy's in front of
/// it, which says so with `X-Forwarded-Proto: https` (the first value, the client's hop). Trusting the
/// header is safe here: a client that lies about it only gets a cookie its own browser will not send back
/// over plain HTTP.
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// False when the browser says the request comes from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` naming another host. A second line behind the CSRF token and `SameSite=Strict`, and the only one
/// for `POST /login`, which takes the key alone (a forged sign-in would put a victim in the attacker's
/// session). `Origin: null` tells nothing — under the pages' own `Referrer-Policy: no-referrer` a browser
/// sends exactly that for this site's forms — so only `Sec-Fetch-Site`, which browsers send to HTTPS and
/// loopback sites whatever the referrer policy, can refuse such a request.
pub fn same_site(headers: &HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|value: &hyper::header::HeaderValue| value.to_str().ok());
    if header("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    match (header(ORIGIN.as_str()), header(HOST.as_str())) {
        (None | Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => false,
    }
}

/// The fields of a form body (or a query string), decoded: `+` is a space, `%XX` a byte.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses `a=1&b=two+words`.
    pub fn parse(text: &str) -> Form {
        Form(crate::http::query::pairs(text, decode))
    }

    /// The value of `key` (the first one when repeated), if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key`, trimmed, if given and not blank.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Form encoding is the query's percent-encoding with `+` for a space (a literal `+` comes as `%2B`).
fn decode(text: &str) -> String {
    crate::http::query::percent_decode(&text.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        let form = Form::parse("key=bk_a%2Bb&note=two+words%21&empty=&flag");
        assert_eq!(form.get("key"), Some("bk_a+b"));
        assert_eq!(form.get("note"), Some("two words!"));
        assert_eq!(form.text("empty"), None);
        assert_eq!(form.get("flag"), Some(""));
        assert_eq!(Form::parse("a=%zz%4").get("a"), Some("%zz%4"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; gavel_session=abc ; b=2")]);
        assert_eq!(session_token(&h), Some("abc"));
        assert_eq!(session_token(&headers(&[("cookie", "a=1"), ("cookie", "gavel_session=x")])), Some("x"));
        assert_eq!(session_token(&headers(&[("cookie", "gavel_session=")])), None);
    }

    #[test]
    fn cookies_are_strict_and_secure_only_behind_tls() {
        assert_eq!(session_cookie("t", false), "gavel_session=t; HttpOnly; SameSite=Strict; Path=/");
        assert!(session_cookie("t", true).ends_with("; Secure"));
        assert!(over_tls(&headers(&[("x-forwarded-proto", "HTTPS, http")])));
        assert!(!over_tls(&headers(&[("x-forwarded-proto", "http")])) && !over_tls(&HeaderMap::new()));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        assert!(same_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_site(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(!same_site(&headers(&[("host", "127.0.0.1:8080"), ("origin", "https://evil.example")])));
        assert!(same_site(&headers(&[("host", "a"), ("origin", "null")])), "what no-referrer pages send");
        assert!(!same_site(&headers(&[("origin", "null"), ("sec-fetch-site", "cross-site")])));
        assert!(!same_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin")])));
    }
}
