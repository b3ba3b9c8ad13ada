//! `GET /openapi.yaml`: the OpenAPI 3.1 description of the JSON APIs, built into the binary from the
//! repository's `openapi.yaml`, so the document served is always the one the tests checked.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

use super::HttpResponse;

/// The document, as committed.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// The document, as `application/yaml` (RFC 9512).
pub fn document() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(OPENAPI_YAML.as_bytes())));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    response
}
