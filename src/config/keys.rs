//! Credentials as the server checks them: every presented key or token is compared by its SHA-256 digest,
//! never as text.
//!
//! Why digests: comparing the text byte by byte stops at the first difference, so the time a wrong key takes
//! to refuse tells an attacker how much of it was right, and a key can be recovered one byte at a time. A
//! digest is fixed-size and its bytes bear no usable relation to the key's: even where a lookup compares
//! digests with an early exit (the hash map below), what the timing reveals is how many leading bytes of
//! SHA-256(guess) match SHA-256(key), and steering a guess towards a digest prefix is a preimage search. The
//! digest also hides the key's length. A map keyed by digest keeps the lookup O(1) however many sellers and
//! buyers there are; the single admin token is compared in constant time as well ([`Secret::matches`]).

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Secret;

/// SHA-256 of a key's bytes.
type KeyDigest = [u8; 32];

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Api keys by digest, each to the position of its owner (a seller or a buyer) in the config.
pub(super) struct KeyIndex(HashMap<KeyDigest, usize>);

impl std::fmt::Debug for KeyIndex {
    /// Only the count: a digest of a weak key could be brute-forced offline, so none is ever printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyIndex({} keys)", self.0.len())
    }
}

impl KeyIndex {
    /// Indexes `keys` by position. The loader has already refused duplicates.
    pub(super) fn new<'a>(keys: impl Iterator<Item = &'a Secret>) -> KeyIndex {
        KeyIndex(keys.enumerate().map(|(position, key)| (digest(key.expose()), position)).collect())
    }

    /// The position of the owner of `presented`, if any.
    pub(super) fn find(&self, presented: &str) -> Option<usize> {
        self.0.get(&digest(presented)).copied()
    }
}

impl Secret {
    /// True if `presented` is this secret, in time that depends on neither value.
    pub fn matches(&self, presented: &str) -> bool {
        digest(self.expose()).ct_eq(&digest(presented)).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text.to_owned())
    }

    #[test]
    fn finds_exactly_the_key_given() {
        let keys = [secret("sk_alpha"), secret("sk_beta")];
        let index = KeyIndex::new(keys.iter());
        assert_eq!(index.find("sk_alpha"), Some(0));
        assert_eq!(index.find("sk_beta"), Some(1));
        for wrong in ["", "sk_", "sk_alph", "sk_alphaa", "SK_ALPHA", " sk_alpha"] {
            assert_eq!(index.find(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn no_key_or_digest_of_one_reaches_debug_output() {
        let text = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "data"
admin_token = "zqx-admin-token"

[[sellers]]
id = "acme"
api_key = "zqx-seller-key"

[[campaigns]]
id = "auto"
ping_fields = ["state"]
floor = "1.00"

[[buyers]]
id = "best"
api_key = "zqx-buyer-key"
campaigns = ["auto"]
ping_url = "https://buyer.example/ping"
post_url = "https://buyer.example/post"
headers = { Authorization = "Bearer zqx-header" }
"#;
        let config = crate::config::parse(text).expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("zqx"), "{printed}");
        let seller_digest = hex::encode(digest("zqx-seller-key"));
        assert!(!printed.contains(&seller_digest[..16]), "{printed}");
    }

    #[test]
    fn a_secret_matches_only_itself() {
        let token = secret("admin-secret");
        assert!(token.matches("admin-secret"));
        for wrong in ["", "admin", "admin-secreT", "admin-secret ", "admin-secret-and-more"] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
    }
}
