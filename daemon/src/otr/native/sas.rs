//! The short authentication string two people read to each other over another channel.
//!
//! `SHA-256("otrd v1 sas" ‖ TH ‖ IK_initiator ‖ IK_responder)`; the first 20 bytes as five
//! big-endian `u32`s, each mod 10000, printed as five space-separated groups of 4 decimal digits.
//! About 66 bits: a man in the middle, whose two transcripts necessarily differ, would have to
//! find a collision between them while the handshake is running.

use sha2::{Digest, Sha256};

/// The SAS for a transcript hash and the initiator's and responder's identity public keys.
pub fn compute(transcript: &[u8; 32], ik_initiator: &[u8; 32], ik_responder: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"otrd v1 sas");
    h.update(transcript);
    h.update(ik_initiator);
    h.update(ik_responder);
    let digest = h.finalize();
    digest
        .chunks(4)
        .take(5)
        .map(|c| {
            let mut b = [0u8; 4];
            b.copy_from_slice(c);
            format!("{:04}", u32::from_be_bytes(b) % 10_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_groups_of_four_digits_that_depend_on_every_input() {
        let s = compute(&[1; 32], &[2; 32], &[3; 32]);
        assert_eq!(s.len(), 24);
        assert!(s
            .split(' ')
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit())));
        assert_ne!(s, compute(&[9; 32], &[2; 32], &[3; 32]));
        assert_ne!(s, compute(&[1; 32], &[3; 32], &[2; 32]));
    }
}
