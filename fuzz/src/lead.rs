//! `Lead::parse` on structure-aware lead objects: the keys are mostly well known and the values are built
//! from pieces that look like phones, emails, ZIP codes, hashes and times, so the fuzzer spends its time in
//! the normalizers rather than in the JSON grammar.

use arbitrary::{Arbitrary, Unstructured};
use gavel::domain::lead::{sha256_hex, Lead, PII_KEYS};
use serde_json::{Map, Number, Value};

use crate::{now, Outcome};

/// Keys that get special treatment, first; then a few plain ones.
const KEYS: [&str; 16] = [
    "postal_code",
    "state",
    "phone",
    "email",
    "trustedform_cert_url",
    "jornaya_leadid",
    "captured_at",
    "phone_sha256",
    "email_sha256",
    "first_name",
    "last_name",
    "address",
    "age",
    "homeowner",
    "notes",
    "credit_score",
];

/// Text fragments the normalizers look for, and a few characters that change under case mapping or count
/// as whitespace.
const FRAGMENTS: [&str; 20] = [
    "+1",
    "(415)",
    "867",
    "555",
    "0100",
    "911",
    "@",
    "example.com",
    ".",
    "-",
    " ",
    "https://cert.trustedform.com/",
    "2026-11-22T10:00:00Z",
    "2026-11-22T10:06:00+00:00",
    "94107",
    "ca",
    "\u{130}",
    "\u{df}",
    "\u{a0}",
    "\t",
];

/// Mostly valid keys: one invalid key refuses the whole lead, so a raw string is one choice in four.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    AlsoKnown(u8),
    /// Made a valid key: lower-cased, other characters dropped.
    Plain(String),
    Raw(String),
}

fn plain_key(text: &str) -> String {
    let mut key: String = text
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    key.truncate(64);
    if key.is_empty() {
        key.push('k');
    }
    key
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Fragment(u8),
    Digits(u64),
    Hex(u128),
    Char(char),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    /// A JSON number written as text (kept as a number if it is one).
    NumberText(String),
    Text(Vec<Piece>),
    /// The SHA-256 (hex) of a text, optionally upper-cased: matches a plain value when the text is its
    /// normalized form.
    Sha256Of(Vec<Piece>, bool),
    /// A long string around the 1024-character limit: a piece repeated, then more pieces.
    Long(u16, Piece, Vec<Piece>),
}

#[derive(Arbitrary, Debug)]
struct LeadInput {
    fields: Vec<(Key, Val)>,
}

/// Builds a lead object from the input and checks [`check_lead`] on it.
pub fn run(data: &[u8]) -> Outcome {
    let Ok(input) = LeadInput::arbitrary_take_rest(Unstructured::new(data)) else { return Outcome::Skipped };
    let mut object = Map::new();
    for (key, value) in input.fields {
        let key = match key {
            Key::Known(i) | Key::AlsoKnown(i) => KEYS[usize::from(i) % KEYS.len()].to_owned(),
            Key::Plain(key) => plain_key(&key),
            Key::Raw(key) => key,
        };
        object.insert(key, value.build());
    }
    check_lead(&object)
}

/// The invariants of a lead: parsing never panics; a lead that parses re-parses from its normalized fields
/// to the same lead (normalization is idempotent); the phone and email hashes agree with the plain values;
/// the journal's projection keeps no PII.
pub fn check_lead(object: &Map<String, Value>) -> Outcome {
    let now = now();
    let Ok(lead) = Lead::parse(object, now) else { return Outcome::Refused };
    match Lead::parse(lead.fields(), now) {
        Ok(again) => {
            assert_eq!(again, lead, "normalizing twice changed the lead");
            assert_eq!(again.fingerprint(), lead.fingerprint());
        }
        Err(error) => panic!("the normalized lead is refused: {error}\nnormalized: {:?}", lead.fields()),
    }

    for (plain, hash) in [(lead.get_str("phone"), lead.phone_sha256()), (lead.get_str("email"), lead.email_sha256())] {
        if let Some(plain) = plain {
            assert_eq!(hash.as_deref(), Some(sha256_hex(plain).as_str()), "the hash of {plain:?}");
        }
        if let Some(hash) = hash {
            assert!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "a hash is 64 lower-case hex digits: {hash}"
            );
        }
    }
    if let Some(phone) = lead.get_str("phone") {
        assert!(phone.len() == 10 && phone.bytes().all(|b| b.is_ascii_digit()), "a phone is ten digits: {phone}");
    }
    let kept_keys: Vec<String> = lead.fields().keys().filter(|k| !PII_KEYS.contains(&k.as_str())).cloned().collect();
    let kept = lead.record_projection(&kept_keys);
    for key in PII_KEYS {
        assert!(!kept.contains_key(key), "the record projection keeps {key}");
    }
    Outcome::Accepted
}

impl Piece {
    fn write(&self, out: &mut String) {
        match self {
            Piece::Fragment(i) => out.push_str(FRAGMENTS[usize::from(*i) % FRAGMENTS.len()]),
            Piece::Digits(n) => out.push_str(&n.to_string()),
            Piece::Hex(n) => out.push_str(&format!("{n:x}")),
            Piece::Char(c) => out.push(*c),
            Piece::Text(text) => out.push_str(text),
        }
    }
}

fn text_of(pieces: &[Piece]) -> String {
    let mut text = String::new();
    for piece in pieces {
        piece.write(&mut text);
    }
    text
}

impl Val {
    fn build(self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Int(n) => Value::from(n),
            Val::NumberText(text) => match serde_json::from_str::<Number>(&text) {
                Ok(number) => Value::Number(number),
                Err(_) => Value::String(text),
            },
            Val::Text(pieces) => Value::String(text_of(&pieces)),
            Val::Sha256Of(pieces, upper) => {
                let hash = sha256_hex(&text_of(&pieces));
                Value::String(if upper { hash.to_ascii_uppercase() } else { hash })
            }
            Val::Long(extra, unit, tail) => {
                let mut unit_text = String::new();
                unit.write(&mut unit_text);
                if unit_text.is_empty() {
                    unit_text.push('x');
                }
                let per_unit = unit_text.chars().count();
                let target = 1000 + usize::from(extra % 64);
                let (mut long, mut chars) = (String::new(), 0);
                while chars < target {
                    long.push_str(&unit_text);
                    chars += per_unit;
                }
                long.push_str(&text_of(&tail));
                Value::String(long)
            }
        }
    }
}
