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

#[cfg(test)]
mod tests {
    #[test]
    fn ids_carry_their_prefix_and_128_bits() {
        let a = super::new_id("p_");
        assert!(a.starts_with("p_") && a.len() == 34, "{a}");
        assert_ne!(a, super::new_id("p_"));
    }
}
