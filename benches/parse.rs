//! Reading a seller's request: the JSON body into an object (serde_json, as `http::body` does, against
//! simd-json), then the lead's validation and normalization (`Lead::parse`). Payloads are API.md section 2's
//! bodies at the sizes sellers send: a ping (228 B), a post of the full lead (277 B), and a direct post of a
//! rich lead with 40 keys (1,527 B), the upper end of what sellers send. Their sizes are printed first.
//!
//! `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`
//!
//! simd-json parses in place, so every simd-json case includes copying the body into a mutable buffer (the
//! request body arrives as immutable `Bytes`). It reads a JSON number with a fraction as an `f64`, which the
//! product may not do with money (API.md section 1); BENCHMARKS.md says what follows from that.

use std::fmt::Write;
use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gavel::domain::lead::Lead;
use serde_json::{Map, Value};

/// (name, body) in the order of API.md section 2.
fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    let ping = br#"{"campaign": "auto-insurance", "lead": {"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true, "phone_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, "deadline_ms": 250, "test": false}"#.to_vec();
    let post = br#"{"ping_id": "p_0123456789abcdef0123456789abcdef", "lead": {"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true, "first_name": "Ada", "last_name": "Lovelace", "phone": "(415) 867-0100", "email": "Ada@Example.com", "address": "1 Market St"}, "min_payout": "8.00"}"#.to_vec();
    let mut direct = String::from(
        r#"{"campaign": "auto-insurance", "deadline_ms": 250, "min_payout": "8.00", "lead": {"postal_code": "94107-1234", "state": "ca", "age": 34, "homeowner": true, "first_name": "Ada", "last_name": "Lovelace", "phone": "+1 (415) 867-0100", "email": " Ada@Example.com ", "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567""#,
    );
    for i in 0..31 {
        let _ = write!(direct, r#", "vehicle_{i}": "make-model-trim-{i:04}""#);
    }
    direct.push_str("}}");
    vec![("ping", ping), ("post", post), ("direct post, 40 keys", direct.into_bytes())]
}

/// What `http::body::read_object` does today: serde_json into a `Value`, which must be an object.
fn serde_object(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object,
        _ => panic!("bench payloads are JSON objects"),
    }
}

/// simd-json into the same `serde_json::Value`: the only way it could replace the above without changing
/// every type that takes the body.
fn simd_object(body: &[u8]) -> Map<String, Value> {
    let mut buffer = body.to_vec();
    match simd_json::serde::from_slice::<Value>(&mut buffer) {
        Ok(Value::Object(object)) => object,
        _ => panic!("bench payloads are JSON objects"),
    }
}

/// What `Envelope::take_object("lead")` does.
fn lead_of(mut envelope: Map<String, Value>) -> Map<String, Value> {
    match envelope.remove("lead") {
        Some(Value::Object(lead)) => lead,
        _ => panic!("bench payloads carry a lead"),
    }
}

fn parse(c: &mut Criterion) {
    let now = Utc::now();
    for (name, body) in payloads() {
        // Both parsers must do the same work for the comparison to mean anything.
        assert_eq!(serde_object(&body), simd_object(&body), "{name}: serde_json and simd-json disagree");
        eprintln!("{name}: {} bytes", body.len());
    }

    let mut json = c.benchmark_group("parse/json");
    for (name, body) in payloads() {
        json.throughput(Throughput::Bytes(body.len() as u64));
        json.bench_with_input(BenchmarkId::new("serde_json", name), &body, |b, body| {
            b.iter(|| black_box(serde_object(body)))
        });
        json.bench_with_input(BenchmarkId::new("simd_json->serde_json::Value", name), &body, |b, body| {
            b.iter(|| black_box(simd_object(body)))
        });
        // simd-json's own value type: its best case, to show what the bridge into serde_json costs. The
        // engine's types take `serde_json::Value`, so this is not a drop-in replacement.
        json.bench_with_input(BenchmarkId::new("simd_json->OwnedValue", name), &body, |b, body| {
            b.iter(|| {
                let mut buffer = body.clone();
                black_box(simd_json::to_owned_value(&mut buffer).expect("valid JSON"))
            })
        });
    }
    json.finish();

    let mut lead = c.benchmark_group("parse/lead");
    for (name, body) in payloads() {
        let object = lead_of(serde_object(&body));
        lead.bench_with_input(BenchmarkId::new("Lead::parse", name), &object, |b, object| {
            b.iter(|| black_box(Lead::parse(object, now).expect("valid lead")))
        });
        lead.bench_with_input(BenchmarkId::new("body+Lead::parse serde_json", name), &body, |b, body| {
            b.iter(|| black_box(Lead::parse(&lead_of(serde_object(body)), now).expect("valid lead")))
        });
        lead.bench_with_input(BenchmarkId::new("body+Lead::parse simd_json", name), &body, |b, body| {
            b.iter(|| black_box(Lead::parse(&lead_of(simd_object(body)), now).expect("valid lead")))
        });
    }
    lead.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
