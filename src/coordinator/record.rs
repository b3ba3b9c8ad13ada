//! A held ping as another node reads it (cluster mode): everything a post needs to be delivered anywhere —
//! who pinged, under which campaign and config revision, until when, the digests the post must match, and the
//! offers in order with each winner's hold — and nothing personal.
//!
//! The node that runs the auction writes the record on the answer's path, borrowing every text from the
//! auction (`Cow::Borrowed`); a node that reads it back owns what it parsed.
//!
//! ## Encoding
//! A format byte, then the record in postcard (a compact binary serde format): money as whole cents, digests
//! as their 32 bytes. JSON cost the answer path 43k instructions an auction in escaping and number formatting
//! (BENCHMARKS.md, "Cluster mode"). A record that starts with `{` is JSON, as a node of an earlier version
//! wrote it: read too, so nodes can be upgraded one at a time while pings they held are posted elsewhere.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::money::Money;

/// The first byte of a record in postcard. A later change of layout takes the next number, and readers keep
/// reading the one before for as long as a record lives (the bids' time to live and five minutes).
const POSTCARD_V1: u8 = 1;

/// One held ping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingRecord<'a> {
    pub ping_id: Cow<'a, str>,
    pub seller: Cow<'a, str>,
    pub campaign: Cow<'a, str>,
    /// The config revision the auction ran on.
    pub revision: Cow<'a, str>,
    pub test: bool,
    pub source: Option<Cow<'a, str>>,
    /// When the bids expire, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// Each ping key with the digest of its normalized value.
    pub digests: Vec<(Cow<'a, str>, Digest)>,
    pub offers: Vec<RecordedOffer<'a>>,
    /// The node that ran the auction.
    pub node: Cow<'a, str>,
}

/// One offer, in the order the lead is offered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedOffer<'a> {
    pub buyer: Cow<'a, str>,
    #[serde(with = "cents")]
    pub bid: Money,
    #[serde(with = "cents")]
    pub price: Money,
    pub priority: i64,
    pub weight: u32,
    pub answered_after_us: u64,
    pub bid_id: Option<Cow<'a, str>>,
    /// The hold taken for it when the auction ended (winners only).
    pub hold: Option<Cow<'a, str>>,
}

impl PingRecord<'_> {
    /// The record as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(&(POSTCARD_V1, self)).expect("a ping record serializes into a vector")
    }
}

impl PingRecord<'static> {
    /// A stored record, in this version's encoding or as an earlier version wrote it (JSON); `None` for
    /// anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<PingRecord<'static>> {
        match bytes.split_first()? {
            (&POSTCARD_V1, rest) => postcard::from_bytes(rest).ok(),
            (b'{', _) => serde_json::from_slice(bytes).ok(),
            _ => None,
        }
    }
}

/// Money as whole cents in a binary record, as its decimal text in JSON (records written by earlier versions).
mod cents {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::money::Money;

    pub fn serialize<S: Serializer>(money: &Money, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            money.serialize(serializer)
        } else {
            serializer.serialize_i64(money.cents())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        if deserializer.is_human_readable() {
            Money::deserialize(deserializer)
        } else {
            i64::deserialize(deserializer).map(Money::from_cents)
        }
    }
}

/// A SHA-256 digest: its 32 bytes in a binary record, lowercase hex in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return self.0.serialize(serializer);
        }
        let mut text = [0u8; 64];
        hex::encode_to_slice(self.0, &mut text).expect("64 hex digits for 32 bytes");
        serializer.serialize_str(std::str::from_utf8(&text).expect("hex is ASCII"))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        if !deserializer.is_human_readable() {
            return <[u8; 32]>::deserialize(deserializer).map(Digest);
        }
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Digest(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PingRecord<'static> {
        PingRecord {
            ping_id: "p_1".into(),
            seller: "s1".into(),
            campaign: "auto".into(),
            revision: "r1".into(),
            test: false,
            source: Some("web \"form\"".into()),
            expires_at_ms: 1_800_000_000_000,
            digests: vec![("zip".into(), Digest([0xab; 32])), ("state".into(), Digest([0; 32]))],
            offers: vec![
                RecordedOffer {
                    buyer: "b1".into(),
                    bid: Money::from_cents(1250),
                    price: Money::from_cents(1101),
                    priority: -2,
                    weight: 3,
                    answered_after_us: 812,
                    bid_id: Some("x-9".into()),
                    hold: Some("h_7".into()),
                },
                RecordedOffer {
                    buyer: "b2".into(),
                    bid: Money::from_cents(99_999_999_999_999_999),
                    price: Money::from_cents(1),
                    priority: i64::MIN,
                    weight: u32::MAX,
                    answered_after_us: u64::MAX,
                    bid_id: None,
                    hold: None,
                },
            ],
            node: "node-a".into(),
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let record = record();
        let bytes = record.to_bytes();
        assert_eq!(bytes[0], POSTCARD_V1);
        assert_eq!(PingRecord::from_bytes(&bytes), Some(record.clone()));
        // Binary: the digests' raw bytes, no hex, and far smaller than the JSON.
        let json = serde_json::to_vec(&record).unwrap();
        assert!(bytes.windows(32).any(|window| window == [0xab; 32]));
        assert!(bytes.len() * 2 < json.len(), "{} bytes against JSON's {}", bytes.len(), json.len());
    }

    #[test]
    fn a_record_an_earlier_version_wrote_in_json_is_read() {
        let record = record();
        let json = serde_json::to_vec(&record).unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains(&format!("\"{}\"", "ab".repeat(32))), "{text}");
        assert!(text.contains("\"bid\":\"12.50\""), "{text}");
        assert_eq!(PingRecord::from_bytes(&json), Some(record));
        let bad = text.replace(&"ab".repeat(32), "not hex");
        assert_eq!(PingRecord::from_bytes(bad.as_bytes()), None);
    }

    #[test]
    fn anything_else_is_no_record() {
        let bytes = record().to_bytes();
        assert_eq!(PingRecord::from_bytes(&[]), None);
        assert_eq!(PingRecord::from_bytes(&bytes[..bytes.len() - 1]), None, "cut short");
        let mut unknown = bytes.clone();
        unknown[0] = POSTCARD_V1 + 1;
        assert_eq!(PingRecord::from_bytes(&unknown), None, "a format this version does not know");
    }
}
