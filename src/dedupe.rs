//! The duplicate check's memory: which buyer bought which phone or email, and when.
//!
//! Kept as SHA-256 digests of the normalized phone and email, never the values, keyed by digest so one
//! lookup per lead finds every buyer that bought it before; the per-buyer `dedupe_days` is then applied by
//! the gate. Sales replayed from the journal at start-up are recorded through the same call, so the history
//! survives a restart.

use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;

use crate::domain::lead::Lead;

/// A SHA-256 digest of a normalized phone or email.
pub type Contact = [u8; 32];

/// The phone and email digests of a lead: from `phone` / `email` when present, else from `phone_sha256` /
/// `email_sha256` (a ping may carry only those).
pub fn contacts_of(lead: &Lead) -> Vec<Contact> {
    [lead.phone_sha256(), lead.email_sha256()]
        .into_iter()
        .flatten()
        .filter_map(|hex_digest| decode_contact(&hex_digest))
        .collect()
}

/// A contact from its hex SHA-256.
pub fn decode_contact(hex_digest: &str) -> Option<Contact> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).ok().map(|()| digest)
}

/// Every recorded sale of a contact: buyer id and when.
#[derive(Default)]
pub struct SalesHistory {
    by_contact: DashMap<Contact, Vec<(String, DateTime<Utc>)>>,
}

impl SalesHistory {
    /// The buyers that bought any of these contacts before, with when they last did.
    pub fn lookup(&self, contacts: &[Contact]) -> SoldBefore {
        let mut sold = Vec::new();
        for contact in contacts {
            if let Some(sales) = self.by_contact.get(contact) {
                sold.extend(sales.iter().cloned());
            }
        }
        SoldBefore(sold)
    }

    /// Remembers that `buyer` bought these contacts at `at`.
    pub fn record(&self, buyer: &str, contacts: &[Contact], at: DateTime<Utc>) {
        for contact in contacts {
            let mut sales = self.by_contact.entry(*contact).or_default();
            match sales.iter_mut().find(|(b, _)| b == buyer) {
                Some((_, last)) => *last = (*last).max(at),
                None => sales.push((buyer.to_owned(), at)),
            }
        }
    }

    /// Forgets sales older than `keep`: no buyer's window reaches them.
    pub fn prune(&self, now: DateTime<Utc>, keep: Duration) {
        let oldest = now - keep;
        self.by_contact.retain(|_, sales| {
            sales.retain(|(_, at)| *at >= oldest);
            !sales.is_empty()
        });
    }
}

/// The earlier sales of one lead's contacts, looked up once per auction.
#[derive(Debug, Default)]
pub struct SoldBefore(Vec<(String, DateTime<Utc>)>);

impl SoldBefore {
    /// True if `buyer` bought this phone or email within the last `days` days (0: the check is off).
    pub fn within(&self, buyer: &str, days: u32, now: DateTime<Utc>) -> bool {
        days > 0 && self.0.iter().any(|(b, at)| b == buyer && now - *at < Duration::days(i64::from(days)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lead(value: serde_json::Value) -> Lead {
        Lead::parse(value.as_object().unwrap(), Utc::now()).unwrap()
    }

    #[test]
    fn a_phone_sent_plain_matches_its_digest_sent_in_a_ping() {
        let posted = lead(json!({"phone": "+1 (415) 867-0100"}));
        let pinged = lead(json!({"phone_sha256": crate::domain::lead::sha256_hex("4158670100")}));
        assert_eq!(contacts_of(&posted), contacts_of(&pinged));
        assert_eq!(contacts_of(&posted).len(), 1);
        assert!(contacts_of(&lead(json!({"age": 3}))).is_empty());
    }

    #[test]
    fn a_sale_is_a_duplicate_for_that_buyer_within_its_days_only() {
        let history = SalesHistory::default();
        let now = Utc::now();
        let phone = contacts_of(&lead(json!({"phone": "4158670100"})));
        let email = contacts_of(&lead(json!({"email": "ada@example.com"})));
        history.record("best", &phone, now - Duration::days(10));
        history.record("solar", &email, now - Duration::hours(1));

        let both = [phone.clone(), email.clone()].concat();
        let sold = history.lookup(&both);
        let cases = [
            ("same buyer inside its window", "best", 30, true),
            ("same buyer past its window", "best", 10, false),
            ("dedupe off", "best", 0, false),
            ("another buyer's purchase", "other", 30, false),
            ("email matches too", "solar", 1, true),
        ];
        for (name, buyer, days, duplicate) in cases {
            assert_eq!(sold.within(buyer, days, now), duplicate, "{name}");
        }
        assert!(!history.lookup(&phone).within("solar", 30, now), "phone alone was never sold to solar");
    }

    #[test]
    fn pruning_forgets_only_what_no_window_reaches() {
        let history = SalesHistory::default();
        let now = Utc::now();
        let old = contacts_of(&lead(json!({"phone": "4158670100"})));
        let recent = contacts_of(&lead(json!({"phone": "4158670101"})));
        history.record("best", &old, now - Duration::days(40));
        history.record("best", &recent, now - Duration::days(2));
        history.prune(now, Duration::days(30));
        assert!(!history.lookup(&old).within("best", 365, now));
        assert!(history.lookup(&recent).within("best", 365, now));
    }
}
