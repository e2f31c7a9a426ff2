//! A small deterministic generator for branch ids, tags and Call-IDs.
//!
//! Seeded by the caller (from the OS in io/, fixed in tests), so protocol cores never
//! touch global randomness. Not for secrets: nonces are keyed with a secret instead.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` lower-case alphanumeric characters.
    pub fn token(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }

    /// A new RFC 3261 branch: magic cookie + 16 random characters.
    pub fn branch(&mut self) -> String {
        format!("{}{}", crate::header::BRANCH_MAGIC, self.token(16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.branch(), b.branch());
        assert_ne!(a.token(10), a.token(10));
        assert!(a.branch().starts_with("z9hG4bK"));
    }
}
