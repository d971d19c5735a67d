//! The short authentication string two people read to each other over another channel.
//!
//! `SHA-256("otrd v3 sas" ‖ TH ‖ n ‖ IK_initiator ‖ IK_responder)`, `n` being the initiator's
//! secret committed to in its offer and revealed in its confirm frame; the first 20 bytes as five
//! big-endian `u32`s, each mod 10000, printed as five space-separated groups of 4 decimal digits.
//!
//! Entropy: 5 × log2(10⁴) ≈ 66.4 bits (the mod-10000 bias is below 2⁻¹⁹ per group). A man in the
//! middle runs two handshakes whose transcripts differ and needs both SASes equal. The commitment
//! takes away every search: as the responder to Alice it must send its key before Alice's `n` is
//! known, as the initiator to Bob it is bound to its `n` before Bob's key is known; so each SAS is
//! uniform to it when its last choice is made, and one attempt succeeds with probability 10⁻²⁰.
//! Each attempt costs a visible handshake with the victims. Users must compare all five groups:
//! comparing fewer gives away 13.3 bits per group skipped.

use sha2::{Digest, Sha256};

/// The SAS for a transcript hash, the initiator's revealed secret, and the initiator's and
/// responder's identity public keys.
pub fn compute(
    transcript: &[u8; 32],
    secret: &[u8; 32],
    ik_initiator: &[u8; 32],
    ik_responder: &[u8; 32],
) -> String {
    let mut h = Sha256::new();
    h.update(b"otrd v3 sas");
    h.update(transcript);
    h.update(secret);
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
        let s = compute(&[1; 32], &[4; 32], &[2; 32], &[3; 32]);
        assert_eq!(s.len(), 24);
        assert!(s
            .split(' ')
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit())));
        assert_ne!(s, compute(&[9; 32], &[4; 32], &[2; 32], &[3; 32]));
        assert_ne!(s, compute(&[1; 32], &[5; 32], &[2; 32], &[3; 32]));
        assert_ne!(s, compute(&[1; 32], &[4; 32], &[3; 32], &[2; 32]));
    }
}
