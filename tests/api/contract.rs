//! `openapi.yaml` as a test oracle: finds the operation of a real request and checks its real answer — the
//! status is documented for that operation, the content type is one documented for that status, the body
//! matches the status's JSON Schema, and required headers are there. A [`Checked`] client sends requests to
//! the running server, checks every answer this way and records which (operation, status) pairs it saw.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// The document, as committed at the repository root.
pub const DOCUMENT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");

/// The parsed document with a cache of compiled schemas.
pub struct Contract {
    pub doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The contract, parsed once per test binary.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let text = std::fs::read_to_string(DOCUMENT_PATH).expect("openapi.yaml is readable");
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("openapi.yaml is not YAML: {e}"));
        Contract { doc, validators: Mutex::default() }
    })
}

/// `~` and `/` escaped for a JSON Pointer (RFC 6901).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON Pointer written as a URI fragment: `{`, `}` and other characters a fragment may not hold are
/// percent-encoded (RFC 3986, RFC 6901 section 6).
fn fragment(pointer: &str) -> String {
    pointer
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What an answer was checked against: the operation and the status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub operation: String,
    pub status: String,
}

impl Contract {
    /// Every (method, path template) the document describes, methods upper case.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        let paths = self.doc["paths"].as_object().expect("paths");
        let mut all = BTreeSet::new();
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                if HTTP_METHODS.contains(&method.as_str()) {
                    all.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        all
    }

    /// The path template a concrete path matches (a `{…}` segment takes any one non-empty segment).
    pub fn template_of(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = self.doc["paths"].as_object().expect("paths");
        paths
            .keys()
            .find(|template| {
                let wanted: Vec<&str> = template.trim_matches('/').split('/').collect();
                wanted.len() == segments.len()
                    && wanted
                        .iter()
                        .zip(&segments)
                        .all(|(w, s)| if w.starts_with('{') { !s.is_empty() } else { w == s })
            })
            .cloned()
    }

    /// Follows a `$ref` into `#/components/…` (the document's only kind of reference); returns the target and
    /// its JSON Pointer.
    pub fn resolve<'d>(&'d self, value: &'d Value, pointer: String) -> (&'d Value, String) {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let target = reference.strip_prefix('#').expect("local reference");
                let found = self.doc.pointer(target).unwrap_or_else(|| panic!("{reference} does not resolve"));
                (found, target.to_owned())
            }
            None => (value, pointer),
        }
    }

    /// Checks `instance` against the schema at `pointer` (with every `$ref` resolved in this document).
    pub fn validate(&self, pointer: &str, instance: &Value) -> Result<(), String> {
        let cached = self.validators.lock().get(pointer).cloned();
        let validator = match cached {
            Some(validator) => validator,
            None => {
                // The whole document is the root resource, so `#/components/schemas/…` resolves in it; the
                // OpenAPI keywords around the schemas are unknown keywords to JSON Schema and are ignored.
                let mut root = self.doc.clone();
                root["$ref"] = json!(format!("#{}", fragment(pointer)));
                let built = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
                let built = Arc::new(built);
                self.validators.lock().insert(pointer.to_owned(), Arc::clone(&built));
                built
            }
        };
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Checks one real answer; panics naming what differs. Returns what it was checked against.
    pub fn check(&self, method: &Method, path: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Seen {
        let context = format!("{method} {path} → {status}: {}", String::from_utf8_lossy(body));
        let Some(template) = self.template_of(path) else {
            assert_eq!(status, StatusCode::NOT_FOUND, "an unknown path: {context}");
            self.check_error_body(body, "not_found", &context);
            return Seen { operation: "(unknown path)".into(), status: "404".into() };
        };
        let item = &self.doc["paths"][&template];
        let method_key = method.as_str().to_lowercase();
        let Some(operation) = item.get(&method_key) else {
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "a method {template} does not take: {context}");
            let documented: Vec<String> =
                HTTP_METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_uppercase()).collect();
            let allow = headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or("");
            let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
            allowed.sort_unstable();
            assert_eq!(allowed, documented, "Allow header of {context}");
            let pointer = "/components/responses/MethodNotAllowed".to_owned();
            self.check_response(
                &self.doc.pointer(&pointer).expect("MethodNotAllowed").clone(),
                pointer,
                headers,
                body,
                &context,
            );
            return Seen { operation: format!("{} {template}", method.as_str()), status: "405".into() };
        };
        let operation_id = operation["operationId"].as_str().expect("operationId").to_owned();
        let status_key = status.as_str().to_owned();
        let pointer = format!("/paths/{}/{method_key}/responses/{status_key}", escape(&template));
        let response = operation["responses"]
            .get(&status_key)
            .unwrap_or_else(|| panic!("status {status_key} is not documented for {operation_id}: {context}"));
        self.check_response(response, pointer, headers, body, &context);
        Seen { operation: operation_id, status: status_key }
    }

    fn check_response(&self, response: &Value, pointer: String, headers: &HeaderMap, body: &[u8], context: &str) {
        let (response, pointer) = self.resolve(response, pointer);
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let (header, _) = self.resolve(header, String::new());
            let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
            if header["required"] == true {
                let value = value.unwrap_or_else(|| panic!("header {name} is missing: {context}"));
                if header["schema"]["type"] == "integer" {
                    let number: u64 = value.parse().unwrap_or_else(|_| panic!("{name}: {value} is no integer"));
                    let minimum = header["schema"]["minimum"].as_u64().unwrap_or(0);
                    assert!(number >= minimum, "{name} = {number} < {minimum}: {context}");
                }
            }
        }
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(body.is_empty(), "no body is documented: {context}");
            return;
        };
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        assert!(content.contains_key(&essence), "content type {content_type:?} is not documented: {context}");
        if essence == "application/json" {
            let instance: Value =
                serde_json::from_slice(body).unwrap_or_else(|e| panic!("the body is not JSON ({e}): {context}"));
            let schema_pointer = format!("{pointer}/content/{}/schema", escape(&essence));
            if let Err(errors) = self.validate(&schema_pointer, &instance) {
                panic!("the body does not match {schema_pointer}: {errors}\n{context}");
            }
        }
    }

    fn check_error_body(&self, body: &[u8], code: &str, context: &str) {
        let instance: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {context}"));
        self.validate("/components/schemas/Error", &instance).unwrap_or_else(|e| panic!("{e}: {context}"));
        assert_eq!(instance["error"]["code"], code, "{context}");
    }
}

/// The methods an OpenAPI path item may hold.
pub const HTTP_METHODS: [&str; 8] = ["delete", "get", "head", "options", "patch", "post", "put", "trace"];

/// A request body for [`Checked::call`].
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// JSON with one more header (name, value).
    JsonWithHeader(&'a Value, (&'a str, &'a str)),
    /// Raw bytes with a content type.
    Raw(&'a str, Vec<u8>),
}

/// A client whose every answer is checked against the document, recording what it saw.
pub struct Checked<'a> {
    pub app: &'a TestApp,
    pub seen: Mutex<BTreeSet<Seen>>,
}

impl<'a> Checked<'a> {
    pub fn new(app: &'a TestApp) -> Checked<'a> {
        Checked { app, seen: Mutex::default() }
    }

    /// Sends one request and checks the answer; returns the status and the JSON body (Null when not JSON).
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Body<'_>) -> (StatusCode, Value) {
        let mut request = self.app.http.request(method.clone(), format!("{}{path}", self.app.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::JsonWithHeader(value, (name, header)) => request.json(value).header(name, header),
            Body::Raw(content_type, bytes) => request.header("content-type", content_type).body(bytes),
        };
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let bare_path = path.split('?').next().unwrap_or(path);
        let seen = contract().check(&method, bare_path, status, &headers, &bytes);
        self.seen.lock().insert(seen);
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), Body::None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Body::Json(body)).await
    }

    /// Records an answer checked outside [`Checked::call`] (a raw socket's).
    pub fn record(&self, seen: Seen) {
        self.seen.lock().insert(seen);
    }
}
