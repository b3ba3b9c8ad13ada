//! The pages' static files, compiled into the binary: the stylesheet and the vendored scripts
//! (`assets/vendor/README.md` says where they come from). Nothing is read from disk at run time.

use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;

use super::page::{with_body, WebResponse};

/// The files by name: (name, content type, bytes, whether the name carries its version).
const FILES: [(&str, &str, &[u8], bool); 4] = [
    ("favicon.svg", "image/svg+xml", include_bytes!("../../assets/favicon.svg"), false),
    ("gavel.css", "text/css; charset=utf-8", include_bytes!("../../assets/gavel.css"), false),
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
        true,
    ),
    (
        "htmx-ext-sse-2.2.4.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/htmx-ext-sse-2.2.4.min.js"),
        true,
    ),
];

/// `GET /assets/{name}`.
pub fn serve(name: &str) -> Option<WebResponse> {
    let (_, content_type, bytes, versioned) = FILES.iter().find(|(file, ..)| *file == name)?;
    let mut response = with_body(StatusCode::OK, content_type, *bytes);
    // A versioned name never changes its bytes; the stylesheet is checked again after five minutes.
    let cache = if *versioned { "public, max-age=31536000, immutable" } else { "public, max-age=300" };
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    Some(response)
}
