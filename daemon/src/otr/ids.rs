//! Meteor `Random.id` tokens (PROTOCOL.md §2.3): outer/inner message ids (17 characters) and ack
//! tokens (20 to 40 characters), drawn from the 55-character alphabet stock clients use.

use rand::{CryptoRng, Rng, RngCore};

/// Meteor's unmistakable-characters alphabet (no 0/1/I/O/U/V/l).
pub const ALPHABET: &[u8; 55] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

/// Length of a message id (`Random.id()`).
pub const MESSAGE_ID_LEN: usize = 17;

/// Shortest ack token a stock client can draw.
pub const ACK_TOKEN_MIN: usize = 20;

/// Longest ack token a stock client can draw.
pub const ACK_TOKEN_MAX: usize = 40;

/// `n` characters drawn uniformly from [`ALPHABET`].
pub fn random_id(rng: &mut (impl RngCore + CryptoRng), n: usize) -> String {
    (0..n)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// A fresh message id: 17 characters, like `Random.id()`.
pub fn message_id(rng: &mut (impl RngCore + CryptoRng)) -> String {
    random_id(rng, MESSAGE_ID_LEN)
}

/// A fresh ack token: 20 to 40 characters, like `Random.id((Random.fraction() + 1) * 20)`.
pub fn ack_token(rng: &mut (impl RngCore + CryptoRng)) -> String {
    let n = rng.gen_range(ACK_TOKEN_MIN..=ACK_TOKEN_MAX);
    random_id(rng, n)
}

/// True when `s` is made only of [`ALPHABET`] characters.
pub fn is_meteor_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn message_ids_have_the_stock_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let id = message_id(&mut rng);
            assert_eq!(id.len(), MESSAGE_ID_LEN);
            assert!(is_meteor_id(&id), "{id}");
        }
    }

    #[test]
    fn ack_tokens_span_20_to_40_characters() {
        let mut rng = StdRng::seed_from_u64(9);
        let lens: Vec<usize> = (0..2000).map(|_| ack_token(&mut rng).len()).collect();
        assert!(lens
            .iter()
            .all(|l| (ACK_TOKEN_MIN..=ACK_TOKEN_MAX).contains(l)));
        assert!(lens.contains(&ACK_TOKEN_MIN) && lens.contains(&ACK_TOKEN_MAX));
        assert!(is_meteor_id(&ack_token(&mut rng)));
    }

    #[test]
    fn alphabet_excludes_ambiguous_characters() {
        for c in b"01IOUVl" {
            assert!(!ALPHABET.contains(c));
        }
        assert!(!is_meteor_id("abc0"));
        assert!(!is_meteor_id(""));
    }
}
