//! Opaque, unguessable ids with a type prefix (`p_` ping, `l_` lead, `t_` transaction, …).

use rand::RngCore;

/// A new id: the prefix and 128 random bits from the thread's cryptographically secure generator, in hex.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    id.push_str(&hex::encode(bytes));
    id
}

/// A new ping id: `p_`, the second it was made (8 hex digits) and 96 random bits (24 hex digits). In cluster
/// mode a post for a ping Redis lost (restarted empty) is told `ping_expired` rather than `not_found` when
/// its id says it could still have been held; the id is as unguessable as any other.
pub fn new_ping_id(at: chrono::DateTime<chrono::Utc>) -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    let seconds = u32::try_from(at.timestamp()).unwrap_or(u32::MAX);
    format!("p_{seconds:08x}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_carry_their_prefix_and_128_bits() {
        let a = super::new_id("p_");
        assert!(a.starts_with("p_") && a.len() == 34, "{a}");
        assert_ne!(a, super::new_id("p_"));
    }

    #[test]
    fn ping_ids_carry_their_second_and_96_random_bits() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let id = super::new_ping_id(at);
        assert!(id.starts_with("p_6b49d200") && id.len() == 34, "{id}");
        assert_ne!(id, super::new_ping_id(at));
    }
}
