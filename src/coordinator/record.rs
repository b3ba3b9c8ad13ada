//! A held ping as another node reads it (cluster mode): everything a post needs to be delivered anywhere —
//! who pinged, under which campaign and config revision, until when, the digests the post must match, and the
//! offers in order with each winner's hold — and nothing personal.
//!
//! The node that runs the auction writes the record on the answer's path, borrowing every text from the
//! auction (`Cow::Borrowed`); a node that reads it back owns what it parsed.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::money::Money;

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
    pub bid: Money,
    pub price: Money,
    pub priority: i64,
    pub weight: u32,
    pub answered_after_us: u64,
    pub bid_id: Option<Cow<'a, str>>,
    /// The hold taken for it when the auction ended (winners only).
    pub hold: Option<Cow<'a, str>>,
}

/// A SHA-256 digest, written as lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 64];
        hex::encode_to_slice(self.0, &mut text).expect("64 hex digits for 32 bytes");
        serializer.serialize_str(std::str::from_utf8(&text).expect("hex is ASCII"))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Digest(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let record = PingRecord {
            ping_id: "p_1".into(),
            seller: "s1".into(),
            campaign: "auto".into(),
            revision: "r1".into(),
            test: false,
            source: Some("web \"form\"".into()),
            expires_at_ms: 1_800_000_000_000,
            digests: vec![("zip".into(), Digest([0xab; 32])), ("state".into(), Digest([0; 32]))],
            offers: vec![RecordedOffer {
                buyer: "b1".into(),
                bid: Money::from_cents(1250),
                price: Money::from_cents(1101),
                priority: -2,
                weight: 3,
                answered_after_us: 812,
                bid_id: Some("x-9".into()),
                hold: None,
            }],
            node: "node-a".into(),
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(&format!("\"{}\"", "ab".repeat(32))), "{text}");
        assert_eq!(serde_json::from_slice::<PingRecord<'static>>(&bytes).unwrap(), record);
        let bad = text.replace(&"ab".repeat(32), "not hex");
        assert!(serde_json::from_str::<PingRecord<'static>>(&bad).is_err());
    }
}
