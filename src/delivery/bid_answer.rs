//! A buyer's ping answer read in one pass, without building the whole document, when the bid sits at the top
//! of it (`bid_path = "/bid"`, the default, or any one-key path): only `no_bid`, `bid_id` and the bid become
//! values; every other member is checked as a `serde_json::Value` would check it and dropped unread.
//!
//! It accepts exactly the answers `serde_json::from_slice::<Value>` reads as an object and gives the same three
//! values as reading them from that object: the unread members are validated the same way (their strings
//! as UTF-8 without lone surrogates, their numbers in full), and a repeated key keeps its last value, as in a
//! `Value`'s map. Building the map, its keys and the members nobody reads cost more than reading the answer
//! (BENCHMARKS.md, "Issue 19, eleventh sitting"). A deeper `bid_path` reads the whole document.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::adapter::at_pointer;

/// The members of an answer that [`crate::delivery::classify_ping`] reads.
#[derive(Debug, Default, PartialEq)]
pub(super) struct BidAnswer {
    pub no_bid: Option<Value>,
    pub bid_id: Option<Value>,
    /// The value at the buyer's `bid_path`.
    pub bid: Option<Value>,
}

impl BidAnswer {
    /// `body` read as a JSON object; `None` where it is not one (`invalid_json`).
    pub fn read(body: &[u8], bid_path: &str) -> Option<BidAnswer> {
        if let Some(bid_key) = top_level_key(bid_path) {
            return read_top_level(body, &bid_key);
        }
        let Ok(document @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else { return None };
        Some(BidAnswer {
            no_bid: document.get("no_bid").cloned(),
            bid_id: document.get("bid_id").cloned(),
            bid: at_pointer(&document, bid_path).cloned(),
        })
    }
}

/// The key of a one-key JSON Pointer (`"/bid"` → `bid`, with `~1` and `~0` undone); `None` for the whole
/// document or a deeper path.
fn top_level_key(pointer: &str) -> Option<Cow<'_, str>> {
    let token = pointer.strip_prefix('/')?;
    if token.contains('/') {
        return None;
    }
    Some(if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    })
}

/// `body` as a JSON object, keeping `no_bid`, `bid_id` and the member named `bid_key`; `None` where
/// `serde_json::from_slice::<Value>` would give an error or something other than an object.
fn read_top_level(body: &[u8], bid_key: &str) -> Option<BidAnswer> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let top = deserializer.deserialize_map(TopLevelVisitor { bid_key }).ok()?;
    deserializer.end().ok()?;
    Some(top)
}

struct TopLevelVisitor<'k> {
    bid_key: &'k str,
}

impl<'de> Visitor<'de> for TopLevelVisitor<'_> {
    type Value = BidAnswer;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BidAnswer, A::Error> {
        let mut answer = BidAnswer::default();
        let mut first = true;
        while let Some(Key(key)) = map.next_key()? {
            if std::mem::take(&mut first) && key == NUMBER_TOKEN {
                return Err(de::Error::custom("a number, not an object"));
            }
            // A buyer's bid may be at `/no_bid` or `/bid_id` too: one member can fill more than one part.
            let (bid, no_bid, bid_id) = (key == self.bid_key, key == "no_bid", key == "bid_id");
            if !(bid || no_bid || bid_id) {
                map.next_value::<Checked>()?;
                continue;
            }
            let value = Some(map.next_value::<Value>()?);
            if no_bid {
                answer.no_bid.clone_from(&value);
            }
            if bid_id {
                answer.bid_id.clone_from(&value);
            }
            if bid {
                answer.bid = value;
            }
        }
        Ok(answer)
    }
}

/// An object key, borrowed from the body unless it holds an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Under `arbitrary_precision` serde_json hands a number to a visitor as a map whose one key is this token, and
/// a `Value` reads any object whose first key it is as a number (or refuses it): so does this reader.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Any JSON value, checked as a `Value` would be and kept nowhere. `IgnoredAny` would skip strings without
/// checking them, and so accept answers a `Value` refuses.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        match map.next_key::<Key>()? {
            None => return Ok(Checked),
            Some(Key(key)) if key == NUMBER_TOKEN => {
                let Key(number) = map.next_value()?;
                return number.parse::<serde_json::Number>().map(|_| Checked).map_err(de::Error::custom);
            }
            Some(_) => map.next_value::<Checked>()?,
        };
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reading the whole document gives, for comparison.
    fn via_value(body: &[u8], bid_key: &str) -> Option<BidAnswer> {
        let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(body) else { return None };
        Some(BidAnswer {
            no_bid: document.get("no_bid").cloned(),
            bid_id: document.get("bid_id").cloned(),
            bid: document.get(bid_key).cloned(),
        })
    }

    #[test]
    fn reads_what_the_whole_document_would_give() {
        let bodies: &[&[u8]] = &[
            br#"{"bid": "12.50", "bid_id": "b-1"}"#,
            br#"{"bid": 12.5, "bid_id": 7, "no_bid": false, "extra": {"a": [1, 2.5e3, null, true, "x"]}}"#,
            br#"{"bid": null}"#,
            br#"{"no_bid": true}"#,
            br#"{"bid": "1.00", "bid": "2.00"}"#,
            br#"{"b\u0069d": "3.00", "price": "4.00"}"#,
            br#"{"price": 99999999999999999999999999.123456789}"#,
            br#"{}"#,
            br#"{"bid": "1.00", "n": {"$serde_json::private::Number": "12.5"}}"#,
            br#"{"bid": "1.00", "n": {"$serde_json::private::Number": "x"}}"#,
            br#"{"bid": "1.00", "n": {"$serde_json::private::Number": "1", "m": 2}}"#,
            br#"{"bid": "1.00", "n": {"m": 2, "$serde_json::private::Number": "x"}}"#,
            br#"{"$serde_json::private::Number": "5", "bid": "1.00"}"#,
            br#"{"$serde_json::private::Number": "5"}"#,
            br#"{"bid": {"$serde_json::private::Number": "7"}}"#,
            br#"  {"bid" : "5.00" }  "#,
            // Refused by a `Value` and so by this reader: not an object, trailing bytes, a lone surrogate or a
            // control character in a member nobody reads, bad escapes, bad numbers, cut short.
            br#"[{"bid": "1.00"}]"#,
            br#""bid""#,
            br#"{"bid": "1.00"} x"#,
            br#"{"bid": "1.00", "note": "\ud800"}"#,
            b"{\"bid\": \"1.00\", \"note\": \"a\x01b\"}",
            br#"{"bid": "1.00", "note": "\q"}"#,
            br#"{"bid": "1.00", "n": 01}"#,
            br#"{"bid": "1.00", "n": 1.}"#,
            br#"{"bid": "1.00", "n": [1, 2"#,
            br#"{"bid": "1.00",}"#,
            b"{\"bid\": \"1.00\", \"note\": \"\xff\"}",
            b"{\"bid\": \"1.00\", \"\xc3\x28\": 1}",
            b"",
        ];
        for body in bodies {
            for key in ["bid", "price", "no_bid", "bid_id"] {
                let shown = String::from_utf8_lossy(body);
                assert_eq!(read_top_level(body, key), via_value(body, key), "{shown} at {key}");
            }
        }
    }

    #[test]
    fn nesting_deeper_than_a_value_allows_is_refused_alike() {
        let deep = format!("{{\"bid\": \"1.00\", \"n\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(read_top_level(deep.as_bytes(), "bid"), None);
        assert_eq!(via_value(deep.as_bytes(), "bid"), None);
    }

    #[test]
    fn only_one_key_paths_have_a_top_level_key() {
        assert_eq!(top_level_key("/bid").as_deref(), Some("bid"));
        assert_eq!(top_level_key("/a~1b~0c").as_deref(), Some("a/b~c"));
        assert_eq!(top_level_key("/offer/amount"), None);
        assert_eq!(top_level_key(""), None);
        assert_eq!(top_level_key("/").as_deref(), Some(""));
    }
}
