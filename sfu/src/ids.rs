//! Server-assigned identifiers: a prefix and 12 random base-32 characters (`PA_…`, `TR_…`).

/// A new random id with the given prefix, e.g. `new_id("TR")` -> `TR_k3j9x0p2q8mz`.
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut id = String::with_capacity(prefix.len() + 13);
    id.push_str(prefix);
    id.push('_');
    for _ in 0..12 {
        id.push(ALPHABET[rand::random::<u8>() as usize % 32] as char);
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = super::new_id("TR");
        assert!(a.starts_with("TR_") && a.len() == 15);
        assert_ne!(a, super::new_id("TR"));
    }
}
