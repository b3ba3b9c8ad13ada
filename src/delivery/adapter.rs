//! The buyer adapter's outbound half (field_map, static_fields) and the JSON helpers pings and posts share.

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::config::Buyer;

/// A lead as one buyer sees it: keys renamed by its `field_map`, its `static_fields` added. Serializes
/// straight from the engine's lead, so no per-buyer copy of the map is ever built.
///
/// No key is written twice: a static field wins over a lead key of the same (outgoing) name, and a renamed
/// key wins over an unrenamed lead key that already has the new name.
pub(crate) struct OutboundLead<'a> {
    lead: &'a Map<String, Value>,
    buyer: &'a Buyer,
}

impl<'a> OutboundLead<'a> {
    pub(crate) fn new(lead: &'a Map<String, Value>, buyer: &'a Buyer) -> OutboundLead<'a> {
        OutboundLead { lead, buyer }
    }

    /// A rough size of the serialized lead, to size the output buffer once.
    pub(crate) fn size_estimate(&self) -> usize {
        const PER_ENTRY: usize = 48;
        (self.lead.len() + self.buyer.static_fields.len()) * PER_ENTRY
    }

    /// True when the buyer renames and adds nothing: the lead goes out as it is.
    pub(crate) fn is_plain(&self) -> bool {
        self.buyer.field_map.is_empty() && self.buyer.static_fields.is_empty()
    }

    /// The name `key` goes out under, or `None` when another entry takes that name.
    fn outgoing_name(&self, key: &'a str) -> Option<&'a str> {
        let field_map = &self.buyer.field_map;
        let name = match field_map.get(key) {
            Some(renamed) => renamed.as_str(),
            None if field_map.iter().any(|(from, to)| to == key && self.lead.contains_key(from)) => return None,
            None => key,
        };
        (!self.buyer.static_fields.contains_key(name)).then_some(name)
    }
}

impl Serialize for OutboundLead<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_plain() {
            return self.lead.serialize(serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.lead {
            if let Some(name) = self.outgoing_name(key) {
                map.serialize_entry(name, value)?;
            }
        }
        for (key, value) in &self.buyer.static_fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Serializes a request body into one pre-sized buffer.
pub(crate) fn json_bytes<T: Serialize>(value: &T, capacity: usize) -> Bytes {
    let mut buffer = Vec::with_capacity(capacity);
    // Writing to a Vec cannot fail, and every body here is string-keyed maps of JSON values and plain fields.
    serde_json::to_writer(&mut buffer, value).expect("request bodies always serialize");
    Bytes::from(buffer)
}

/// The text of a JSON string, or a number written as text (buyers' ids are often numeric); else `None`.
pub(crate) fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The value at JSON Pointer `pointer` (RFC 6901) in `document`, as `Value::pointer` finds it, without its
/// two string replacements per token (a buyer's answer is read this way on every ping).
pub(crate) fn at_pointer<'a>(document: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(document);
    }
    let mut target = document;
    for token in pointer.strip_prefix('/')?.split('/') {
        let unescaped;
        let token = if token.contains('~') {
            unescaped = token.replace("~1", "/").replace("~0", "~");
            unescaped.as_str()
        } else {
            token
        };
        target = match target {
            Value::Object(map) => map.get(token)?,
            Value::Array(list) => list.get(array_index(token)?)?,
            _ => return None,
        };
    }
    Some(target)
}

/// An array index token: digits without a sign or a leading zero (as serde_json reads it).
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::test_support::offline_buyer;

    fn outbound(lead: Value, field_map: &[(&str, &str)], static_fields: Value) -> String {
        let mut buyer = offline_buyer();
        buyer.field_map = field_map.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        buyer.static_fields = static_fields.as_object().cloned().unwrap_or_default();
        let lead = lead.as_object().cloned().unwrap();
        serde_json::to_string(&OutboundLead::new(&lead, &buyer)).unwrap()
    }

    #[test]
    fn renames_and_adds_without_duplicate_keys() {
        let cases = [
            (json!({"a": 1, "b": "x"}), vec![], json!({}), r#"{"a":1,"b":"x"}"#),
            (
                json!({"postal_code": "94107", "age": 30}),
                vec![("postal_code", "zip")],
                json!({}),
                r#"{"age":30,"zip":"94107"}"#,
            ),
            (json!({"a": 1}), vec![], json!({"source": "gavel"}), r#"{"a":1,"source":"gavel"}"#),
            // The static field is the buyer's fixed value: it replaces the lead's.
            (json!({"source": "seller", "a": 1}), vec![], json!({"source": "gavel"}), r#"{"a":1,"source":"gavel"}"#),
            // ...also when a rename lands on its name.
            (json!({"a": 1}), vec![("a", "source")], json!({"source": "gavel"}), r#"{"source":"gavel"}"#),
            // The renamed key wins over an unrenamed key of the same name.
            (
                json!({"zip": "00000", "postal_code": "94107"}),
                vec![("postal_code", "zip")],
                json!({}),
                r#"{"zip":"94107"}"#,
            ),
            // A rename whose source is absent shadows nothing.
            (json!({"zip": "00000"}), vec![("postal_code", "zip")], json!({}), r#"{"zip":"00000"}"#),
        ];
        // Compared as text, since parsing would hide a duplicate key; the lead map iterates in key order.
        for (lead, field_map, static_fields, expected) in cases {
            assert_eq!(outbound(lead.clone(), &field_map, static_fields), expected, "lead {lead}");
        }
    }

    #[test]
    fn numbers_keep_their_text() {
        let lead: Value = serde_json::from_str(r#"{"income": 12345678901234567890.10}"#).unwrap();
        assert_eq!(outbound(lead, &[], json!({})), r#"{"income":12345678901234567890.10}"#);
    }

    #[test]
    fn text_of_strings_and_numbers_only() {
        let cases = [
            (json!("b-1"), Some("b-1")),
            (json!(42), Some("42")),
            (json!(null), None),
            (json!(true), None),
            (json!({"id": 1}), None),
        ];
        for (value, expected) in cases {
            assert_eq!(text_of(Some(&value)).as_deref(), expected, "{value}");
        }
        assert_eq!(text_of(None), None);
    }

    #[test]
    fn at_pointer_finds_what_serde_jsons_pointer_finds() {
        let document = serde_json::json!({
            "bid": "1.50", "offer": {"amount": 2, "a/b": 3, "m~n": 4}, "list": [10, 11], "": {"": 5}
        });
        for pointer in [
            "",
            "/bid",
            "/offer/amount",
            "/offer/a~1b",
            "/offer/m~0n",
            "/list/1",
            "/list/01",
            "/list/+1",
            "/list/9",
            "/missing",
            "bid",
            "/bid/deeper",
            "/",
            "//",
            "/offer/amount/x",
        ] {
            assert_eq!(at_pointer(&document, pointer), document.pointer(pointer), "{pointer:?}");
        }
    }
}
