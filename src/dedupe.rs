//! The duplicate check's memory: for one buyer, which phones and emails it bought and when, and which are
//! **reserved** by its holds — bids won and not yet sold, rejected or expired.
//!
//! A contact is the SHA-256 digest of a normalized phone or email, never the value. Each buyer keeps its own
//! [`ContactBook`] beside its caps (in [`crate::capacity`]), under the same lock, so taking a hold checks and
//! reserves the lead's contacts in the same step as its cap units and funds: two auctions of one lead racing
//! for one buyer cannot both win it. A reservation becomes the sale's history entry when the hold commits and
//! disappears when the hold is dropped. Sales replayed from the journal at start-up are recorded through the
//! same call, so the history survives a restart.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Duration, Utc};

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

/// How many expired sales one new sale may forget: expiry is bounded work per sale, never a pass over all.
const EXPIRE_PER_SALE: usize = 8;

/// What one buyer's book knows of one contact.
#[derive(Debug, Clone, Copy, Default)]
struct ContactState {
    last_sale: Option<DateTime<Utc>>,
    /// Held by one of the buyer's holds (at most one: a second hold of the same contact is a duplicate).
    reserved: bool,
}

/// One buyer's sales and reservations by contact.
#[derive(Debug, Default)]
pub struct ContactBook {
    by_contact: HashMap<Contact, ContactState, BuildHasherDefault<DigestHasher>>,
    /// Sales in the order they were recorded, so the oldest are forgotten first.
    sold_order: VecDeque<(DateTime<Utc>, Contact)>,
}

impl ContactBook {
    /// True if one of `contacts` is reserved by a hold, or was sold within the last `days` days (0: the check
    /// is off).
    pub fn is_duplicate(&self, contacts: &[Contact], days: u32, now: DateTime<Utc>) -> bool {
        days > 0 && contacts.iter().any(|contact| self.blocks(contact, days, now))
    }

    /// Reserves every contact of `contacts` not already in `held`, unless one of them is a duplicate; all or
    /// nothing. Returns what it reserved (for the hold to give back).
    pub fn reserve(
        &mut self,
        contacts: &[Contact],
        held: &[Contact],
        days: u32,
        now: DateTime<Utc>,
    ) -> Option<Vec<Contact>> {
        if days == 0 {
            return Some(Vec::new());
        }
        let new: Vec<Contact> = contacts.iter().filter(|c| !held.contains(c)).copied().collect();
        if new.iter().any(|contact| self.blocks(contact, days, now)) {
            return None;
        }
        for contact in &new {
            self.by_contact.entry(*contact).or_default().reserved = true;
        }
        Some(new)
    }

    /// Reserves the contacts not reserved yet, whatever the book holds (a shadow of a hold checked elsewhere);
    /// returns those it reserved.
    pub fn force_reserve(&mut self, contacts: &[Contact]) -> Vec<Contact> {
        let mut reserved = Vec::new();
        for contact in contacts {
            let state = self.by_contact.entry(*contact).or_default();
            if !state.reserved {
                state.reserved = true;
                reserved.push(*contact);
            }
        }
        reserved
    }

    /// Gives back a hold's reservations.
    pub fn release(&mut self, contacts: &[Contact]) {
        for contact in contacts {
            if let Some(state) = self.by_contact.get_mut(contact) {
                state.reserved = false;
                if state.last_sale.is_none() {
                    self.by_contact.remove(contact);
                }
            }
        }
    }

    /// The buyer bought `contacts` at `at`: their reservations (if any) become history, kept for `keep_days`.
    pub fn record_sale(&mut self, contacts: &[Contact], at: DateTime<Utc>, keep_days: u32) {
        for contact in contacts {
            let state = self.by_contact.entry(*contact).or_default();
            state.reserved = false;
            if keep_days == 0 {
                if state.last_sale.is_none() {
                    self.by_contact.remove(contact);
                }
                continue;
            }
            state.last_sale = Some(state.last_sale.map_or(at, |last| last.max(at)));
            self.sold_order.push_back((at, *contact));
        }
        self.expire(at - Duration::days(i64::from(keep_days)));
    }

    /// The contacts sold within the last `days` days, with their last sale.
    pub fn sold_since(&self, now: DateTime<Utc>, days: u32) -> Vec<(Contact, DateTime<Utc>)> {
        if days == 0 {
            return Vec::new();
        }
        let window = Duration::days(i64::from(days));
        self.by_contact
            .iter()
            .filter_map(|(contact, state)| state.last_sale.filter(|at| now - *at < window).map(|at| (*contact, at)))
            .collect()
    }

    /// How many contacts the book holds (sold or reserved).
    pub fn len(&self) -> usize {
        self.by_contact.len()
    }

    /// True when the book holds nothing.
    pub fn is_empty(&self) -> bool {
        self.by_contact.is_empty()
    }

    fn blocks(&self, contact: &Contact, days: u32, now: DateTime<Utc>) -> bool {
        self.by_contact.get(contact).is_some_and(|state| {
            state.reserved || state.last_sale.is_some_and(|at| now - at < Duration::days(i64::from(days)))
        })
    }

    /// Forgets a few sales older than `oldest`. A stale entry left behind answers correctly anyway: the window
    /// is compared with the sale's time on every check.
    fn expire(&mut self, oldest: DateTime<Utc>) {
        for _ in 0..EXPIRE_PER_SALE {
            match self.sold_order.front() {
                Some((at, _)) if *at < oldest => {}
                _ => return,
            }
            let Some((at, contact)) = self.sold_order.pop_front() else { return };
            let Some(state) = self.by_contact.get_mut(&contact) else { continue };
            // A later sale of the same contact keeps it.
            if state.last_sale == Some(at) {
                state.last_sale = None;
                if !state.reserved {
                    self.by_contact.remove(&contact);
                }
            }
        }
    }
}

/// Contacts are SHA-256 digests, already uniformly spread: their first eight bytes are a perfect hash, and
/// SipHash over 32 bytes per buyer per auction would cost more than the rest of the duplicate gate.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    // An array hashes its length first; it is the same for every contact.
    fn write_usize(&mut self, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lead(value: serde_json::Value) -> Lead {
        Lead::parse(value.as_object().unwrap(), Utc::now()).unwrap()
    }

    fn phone(number: &str) -> Vec<Contact> {
        contacts_of(&lead(json!({ "phone": number })))
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
    fn a_sale_is_a_duplicate_within_the_window_only() {
        let mut book = ContactBook::default();
        let now = Utc::now();
        let (sold, email) = (phone("4158670100"), contacts_of(&lead(json!({"email": "ada@example.com"}))));
        book.record_sale(&sold, now - Duration::days(10), 30);
        let both = [sold.clone(), email.clone()].concat();
        let cases = [
            ("inside the window", &both, 30, true),
            ("past the window", &both, 10, false),
            ("dedupe off", &both, 0, false),
            ("another contact", &email, 30, false),
        ];
        for (name, contacts, days, duplicate) in cases {
            assert_eq!(book.is_duplicate(contacts, days, now), duplicate, "{name}");
        }
    }

    #[test]
    fn a_reservation_blocks_until_released_or_sold() {
        let mut book = ContactBook::default();
        let now = Utc::now();
        let contacts = phone("4158670100");
        let held = book.reserve(&contacts, &[], 30, now).expect("free");
        assert!(book.is_duplicate(&contacts, 30, now));
        assert!(book.reserve(&contacts, &[], 30, now).is_none(), "a second hold of the same contact");
        assert_eq!(book.reserve(&contacts, &held, 30, now), Some(Vec::new()), "the holder itself may go on");

        book.release(&held);
        assert!(!book.is_duplicate(&contacts, 30, now));
        assert!(book.is_empty(), "a released reservation leaves nothing behind");

        let held = book.reserve(&contacts, &[], 30, now).expect("free again");
        book.record_sale(&held, now, 30);
        assert!(book.is_duplicate(&contacts, 30, now + Duration::days(29)), "the reservation became history");
        assert!(!book.is_duplicate(&contacts, 30, now + Duration::days(31)));
    }

    #[test]
    fn reserving_is_all_or_nothing() {
        let mut book = ContactBook::default();
        let now = Utc::now();
        let (a, b) = (phone("4158670100"), phone("4158670101"));
        book.record_sale(&b, now, 30);
        assert!(book.reserve(&[a.clone(), b].concat(), &[], 30, now).is_none());
        assert!(!book.is_duplicate(&a, 30, now), "nothing was reserved");
        assert_eq!(book.reserve(&a, &[], 0, now), Some(Vec::new()), "dedupe off reserves nothing");
        assert!(!book.is_duplicate(&a, 30, now));
    }

    #[test]
    fn old_sales_are_forgotten_a_few_at_a_time() {
        let mut book = ContactBook::default();
        let long_ago = Utc::now() - Duration::days(60);
        for n in 0..20 {
            book.record_sale(&phone(&format!("41586701{n:02}")), long_ago, 30);
        }
        assert_eq!(book.len(), 20);
        let now = Utc::now();
        book.record_sale(&phone("4158670199"), now, 30);
        assert_eq!(book.len(), 21 - EXPIRE_PER_SALE, "one sale forgets at most {EXPIRE_PER_SALE}");
        book.record_sale(&phone("4158670198"), now, 30);
        book.record_sale(&phone("4158670197"), now, 30);
        assert_eq!(book.len(), 3, "the backlog is gone after a few sales");
    }

    #[test]
    fn a_later_sale_of_the_same_contact_survives_the_expiry_of_the_first() {
        let mut book = ContactBook::default();
        let now = Utc::now();
        let contacts = phone("4158670100");
        book.record_sale(&contacts, now - Duration::days(40), 30);
        book.record_sale(&contacts, now - Duration::days(1), 30);
        book.record_sale(&phone("4158670101"), now, 30);
        assert!(book.is_duplicate(&contacts, 30, now));
    }
}
