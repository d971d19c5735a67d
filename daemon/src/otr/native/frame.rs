//! The native message frame: `version ‖ header ‖ AES-GCM ciphertext`. Framing only — no keys.

use super::transcript::put_lp;
use super::{InstanceTag, NativeError};

/// The frame version byte this build writes and accepts: 2 since native version 2 (version 3
/// changed the handshake only, so frames stay as they were).
pub const FRAME_VERSION: u8 = 2;

/// Bytes of version + header: 1 + 4 + 4 + 32 + 4 + 4.
pub const HEADER_LEN: usize = 49;

/// AES-GCM tag length: the smallest possible ciphertext.
const TAG_LEN: usize = 16;

/// A Double Ratchet message header (authenticated, not encrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sending instance.
    pub sender_tag: InstanceTag,
    /// The instance the frame is for.
    pub receiver_tag: InstanceTag,
    /// The sender's current ratchet public key.
    pub ratchet: [u8; 32],
    /// Length of the sender's previous sending chain.
    pub pn: u32,
    /// This message's number in the current sending chain.
    pub n: u32,
}

impl Header {
    /// Version byte and header, as written on the wire and used as associated data.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = FRAME_VERSION;
        out[1..5].copy_from_slice(&self.sender_tag.value().to_be_bytes());
        out[5..9].copy_from_slice(&self.receiver_tag.value().to_be_bytes());
        out[9..41].copy_from_slice(&self.ratchet);
        out[41..45].copy_from_slice(&self.pn.to_be_bytes());
        out[45..49].copy_from_slice(&self.n.to_be_bytes());
        out
    }

    /// Splits a frame into its header (plus the raw header bytes) and ciphertext.
    pub fn decode(frame: &[u8]) -> Result<(Header, &[u8], &[u8]), NativeError> {
        if frame.len() < HEADER_LEN + TAG_LEN {
            return Err(NativeError::BadFrame("too short"));
        }
        let (head, ciphertext) = frame.split_at(HEADER_LEN);
        if head[0] != FRAME_VERSION {
            return Err(NativeError::BadFrame("unknown version"));
        }
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[i..i + 4]);
            u32::from_be_bytes(b)
        };
        let tag =
            |i: usize| InstanceTag::new(u32_at(i)).ok_or(NativeError::BadFrame("instance tag"));
        let mut ratchet = [0u8; 32];
        ratchet.copy_from_slice(&head[9..41]);
        let header = Header {
            sender_tag: tag(1)?,
            receiver_tag: tag(5)?,
            ratchet,
            pn: u32_at(41),
            n: u32_at(45),
        };
        Ok((header, head, ciphertext))
    }
}

/// The caller's part of a message's associated data: room id, sender uid, receiver uid (each
/// length-prefixed). The sender passes (room, own uid, peer uid); the receiver (room, peer uid,
/// own uid) — so a frame moved to another room, or relayed by a third user, fails to decrypt.
pub fn message_context(room_id: &str, sender_uid: &str, receiver_uid: &str) -> Vec<u8> {
    let mut out = b"otrd v1 message context".to_vec();
    put_lp(&mut out, room_id.as_bytes());
    put_lp(&mut out, sender_uid.as_bytes());
    put_lp(&mut out, receiver_uid.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_bad_frames() {
        let h = Header {
            sender_tag: InstanceTag(0x1234_5678),
            receiver_tag: InstanceTag(0x100),
            ratchet: [7; 32],
            pn: 3,
            n: 9,
        };
        let mut frame = h.encode().to_vec();
        frame.extend_from_slice(&[0u8; 16]);
        let (back, head, ct) = Header::decode(&frame).expect("decodes");
        assert_eq!(back, h);
        assert_eq!(head, &h.encode()[..]);
        assert_eq!(ct.len(), 16);
        assert_eq!(
            Header::decode(&frame[..60]),
            Err(NativeError::BadFrame("too short"))
        );
        for other in [1, 3] {
            // 1: a version-1 frame (its message keys go through HKDF) must not be opened as ours.
            frame[0] = other;
            assert_eq!(
                Header::decode(&frame),
                Err(NativeError::BadFrame("unknown version"))
            );
        }
        frame[0] = FRAME_VERSION;
        frame[1..5].copy_from_slice(&[0, 0, 0, 5]);
        assert_eq!(
            Header::decode(&frame),
            Err(NativeError::BadFrame("instance tag"))
        );
    }
}
