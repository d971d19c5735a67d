//! Signal's Double Ratchet for an established native session: per-message keys, a DH ratchet
//! step whenever the speaker changes, skipped keys for out-of-order delivery.
//!
//! Follows signal.org/docs/specifications/doubleratchet with one deviation: the spec generates
//! the new sending ratchet key pair inside `DHRatchet` on receipt; here receipt derives only the
//! receiving chain (and drops our old ratchet private key at once), and the new key pair plus
//! its sending chain are made at our next `encrypt`. The root-key sequence is the same — the
//! peer can only ratchet again after seeing our new key — and no randomness is needed to
//! decrypt. Every decryption first derives the keys it needs beside the state (a skipped key is
//! looked up, not removed; a ratchet step or a skip is computed into a small `Candidate`) and
//! commits only once the frame opened, so a forged or replayed frame changes nothing — and
//! costs no copy of the skipped-key store and no locked-memory slot.

use super::frame::{Header, HEADER_LEN};
use super::keys::{dh, hkdf, hmac, hmac_pair, locked_from, mac_eq, public_of, random_key};
use super::{Fingerprint, InstanceTag, NativeError};
use crate::secure::{LockedKey, SecretBytes};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::collections::HashMap;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Most message keys skipped in one chain for one incoming message.
pub const MAX_SKIP: u32 = 100;
/// Most skipped message keys held at once; the oldest go first.
pub const MAX_SKIPPED_KEYS: usize = 200;
/// A skipped key expires once this many later messages have been decrypted.
pub const SKIPPED_KEY_LIFETIME: u64 = 200;

/// Derives the session's end key from its first root key.
const END_KEY_LABEL: &[u8] = b"otrd v1 end key";
/// Prefix of the `end` proof.
const END_LABEL: &[u8] = b"otrd v1 end";

/// `KDF_RK`: HKDF-SHA256(salt = root key, ikm = DH output) → (new root key, chain key).
pub(crate) fn kdf_rk(root: &LockedKey<32>, dh_out: &[u8]) -> (LockedKey<32>, LockedKey<32>) {
    let okm = kdf_rk_bytes(root, dh_out);
    (locked_from(&okm[..32]), locked_from(&okm[32..]))
}

/// [`kdf_rk`] on the stack (new root ‖ chain key, wiped on drop): a receive step is computed
/// before the frame is authenticated and goes to locked memory only once it opened.
fn kdf_rk_bytes(root: &LockedKey<32>, dh_out: &[u8]) -> Zeroizing<[u8; 64]> {
    let mut okm = Zeroizing::new([0u8; 64]);
    hkdf(root.expose(), dh_out, b"otrd v1 ratchet", okm.as_mut());
    okm
}

/// `KDF_CK`: message key = HMAC(CK, 0x01), next chain key = HMAC(CK, 0x02). Both are used at
/// once — the message key for one message, the next chain key to overwrite the current one in
/// its locked slot once the step is committed — so they stay on the stack (wiped on drop)
/// instead of taking arena slots; only skipped keys, which wait, go to locked memory.
fn kdf_ck(chain: &LockedKey<32>) -> (MessageKey, Zeroizing<[u8; 32]>) {
    kdf_ck_bytes(chain.expose())
}

/// [`kdf_ck`] from a chain key on the stack (a candidate chain, not committed yet).
fn kdf_ck_bytes(chain: &[u8; 32]) -> (MessageKey, Zeroizing<[u8; 32]>) {
    let (mk, next) = hmac_pair(chain);
    (MessageKey(mk), next)
}

/// Most bytes of associated data (header ‖ caller context) built on the stack; longer contexts
/// (room ids and uids far beyond Rocket.Chat's 17–34 characters) use the heap.
const AAD_STACK: usize = 256;

/// Runs `f` with header ‖ context as one slice, without allocating in the common case.
fn with_aad<T>(head: &[u8], ad: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    let len = head.len() + ad.len();
    if len <= AAD_STACK {
        let mut buf = [0u8; AAD_STACK];
        buf[..head.len()].copy_from_slice(head);
        buf[head.len()..len].copy_from_slice(ad);
        f(&buf[..len])
    } else {
        f(&[head, ad].concat())
    }
}

/// One message key, for one message.
struct MessageKey(Zeroizing<[u8; 32]>);

impl MessageKey {
    fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Moves the key to locked memory, to wait for a message that has not arrived yet.
    fn lock(self) -> LockedKey<32> {
        let mut k = *self.0;
        LockedKey::new(&mut k)
    }
}

/// GCM tag length.
const TAG_LEN: usize = 16;

/// The AEAD for one message (protocol version 2): AES-256-GCM keyed by the message key itself,
/// nonce = 8 zero bytes ‖ N (big-endian). The message key is an HMAC output, uniformly random,
/// and seals exactly one message — a used key is deleted, a skipped key is removed when used —
/// so no (key, nonce) pair can repeat; N in the nonce is defence in depth only. Version 1 ran the
/// key through HKDF first (10 more SHA-256 compressions per message and side, ~40% of the
/// per-message cost) for no security gain with an AEAD. The AEAD context (AWS-LC, as the legacy
/// scheme) lives for one message: its key schedule is in AWS-LC's heap only for that call, and
/// AWS-LC wipes it on free.
fn message_cipher(mk: &[u8; 32], n: u32) -> Option<(LessSafeKey, Nonce)> {
    let key = UnboundKey::new(&AES_256_GCM, mk).ok()?;
    let mut nonce = [0u8; 12];
    nonce[8..].copy_from_slice(&n.to_be_bytes());
    Some((LessSafeKey::new(key), Nonce::assume_unique_for_key(nonce)))
}

/// What the handshake hands over to start the ratchet.
pub(crate) struct RatchetInit {
    pub own_tag: InstanceTag,
    pub peer_tag: InstanceTag,
    pub root: LockedKey<32>,
    /// Our ratchet key pair and sending chain (the initiator has one from the start).
    pub sending: Option<(LockedKey<32>, [u8; 32], LockedKey<32>)>,
    pub peer_ratchet: [u8; 32],
    pub receiving: Option<LockedKey<32>>,
    pub peer_identity: [u8; 32],
    pub sas: String,
}

#[cfg_attr(test, derive(Clone))]
struct SendingChain {
    ratchet: LockedKey<32>,
    ratchet_pub: [u8; 32],
    chain: LockedKey<32>,
    n: u32,
}

#[cfg_attr(test, derive(Clone))]
struct SkippedKey {
    key: LockedKey<32>,
    /// `received_total` when stored (for expiry).
    stored_at: u64,
    /// Insertion order (for eviction).
    seq: u64,
}

/// The ratchet's mutable state. Not `Clone` outside tests (there only for
/// `NativeSession::snapshot`): decryption must never copy it, skipped keys and all, to try a
/// frame — it derives a `Candidate` instead.
#[cfg_attr(test, derive(Clone))]
struct State {
    root: LockedKey<32>,
    /// `None` after a receive step: the next send makes a new ratchet key.
    sending: Option<SendingChain>,
    /// Length of our previous sending chain (`PN` in our headers).
    pn: u32,
    peer_ratchet: [u8; 32],
    receiving: Option<LockedKey<32>>,
    nr: u32,
    skipped: HashMap<([u8; 32], u32), SkippedKey>,
    received_total: u64,
    next_seq: u64,
}

/// An established native session: encrypts and decrypts message frames.
pub struct NativeSession {
    own_tag: InstanceTag,
    peer_tag: InstanceTag,
    peer_identity: [u8; 32],
    sas: String,
    /// `HMAC(first root key, "otrd v1 end key")`: fixed for the session's life (the root key
    /// moves with the ratchet and is briefly different on the two sides), so both sides can
    /// authenticate `end` at any time.
    end_key: LockedKey<32>,
    state: State,
}

impl fmt::Debug for NativeSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeSession")
            .field("own_tag", &self.own_tag)
            .field("peer_tag", &self.peer_tag)
            .field("peer", &Fingerprint::of(&self.peer_identity))
            .finish_non_exhaustive()
    }
}

impl NativeSession {
    pub(crate) fn new(init: RatchetInit) -> Self {
        let mut end_key = hmac(init.root.expose(), &[END_KEY_LABEL]);
        let end_key = LockedKey::new(&mut end_key);
        let sending = init
            .sending
            .map(|(ratchet, ratchet_pub, chain)| SendingChain {
                ratchet,
                ratchet_pub,
                chain,
                n: 0,
            });
        Self {
            own_tag: init.own_tag,
            peer_tag: init.peer_tag,
            peer_identity: init.peer_identity,
            sas: init.sas,
            end_key,
            state: State {
                root: init.root,
                sending,
                pn: 0,
                peer_ratchet: init.peer_ratchet,
                receiving: init.receiving,
                nr: 0,
                skipped: HashMap::new(),
                received_total: 0,
                next_seq: 0,
            },
        }
    }

    /// The peer's identity public key.
    pub fn peer_identity(&self) -> [u8; 32] {
        self.peer_identity
    }

    /// The peer's fingerprint (for the trust store).
    pub fn peer_fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.peer_identity)
    }

    /// The short authentication string (same on both sides).
    pub fn sas(&self) -> String {
        self.sas.clone()
    }

    /// The peer's instance tag.
    pub fn peer_instance_tag(&self) -> InstanceTag {
        self.peer_tag
    }

    /// Our instance tag.
    pub fn own_instance_tag(&self) -> InstanceTag {
        self.own_tag
    }

    /// The proof that `sender_uid` ends this session in `room`:
    /// `HMAC-SHA256(end key, "otrd v1 end" ‖ len ‖ room ‖ len ‖ sender uid)`. Only the two
    /// holders of the session keys can make it, so a third user sharing a room cannot forge an
    /// `end`; the sender uid keeps our own token from being reflected back to us.
    pub fn end_token(&self, room: &str, sender_uid: &str) -> [u8; 32] {
        let room_len = (room.len() as u32).to_be_bytes();
        let sender_len = (sender_uid.len() as u32).to_be_bytes();
        *hmac(
            self.end_key.expose(),
            &[
                END_LABEL,
                &room_len,
                room.as_bytes(),
                &sender_len,
                sender_uid.as_bytes(),
            ],
        )
    }

    /// `HMAC-SHA256(end key, parts…)`: the MAC under the key only the two ends of this session
    /// hold, for the proofs that authenticate its control signals (see `super::control`).
    pub(crate) fn session_mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        *hmac(self.end_key.expose(), parts)
    }

    /// Whether `token` is [`NativeSession::end_token`] for `sender_uid` in `room` (constant time).
    pub fn verify_end_token(&self, room: &str, sender_uid: &str, token: &[u8]) -> bool {
        mac_eq(&self.end_token(room, sender_uid), token)
    }

    /// How many skipped message keys are held (for tests and status).
    pub fn skipped_keys(&self) -> usize {
        self.state.skipped.len()
    }

    /// Encrypts one message. `ad` is [`super::message_context`]`(room, own uid, peer uid)`.
    pub fn encrypt<R: rand::RngCore + rand::CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        ad: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, NativeError> {
        let st = &mut self.state;
        let mut chain = match st.sending.take() {
            Some(c) => c,
            None => {
                let ratchet = random_key(rng);
                let ratchet_pub = public_of(&ratchet);
                let (root, chain) = kdf_rk(&st.root, dh(&ratchet, &st.peer_ratchet)?.as_ref());
                st.root = root;
                SendingChain {
                    ratchet,
                    ratchet_pub,
                    chain,
                    n: 0,
                }
            }
        };
        if chain.n == u32::MAX {
            st.sending = Some(chain);
            return Err(NativeError::CounterExhausted);
        }
        let header = Header {
            sender_tag: self.own_tag,
            receiver_tag: self.peer_tag,
            ratchet: chain.ratchet_pub,
            pn: st.pn,
            n: chain.n,
        };
        let (mk, mut next) = kdf_ck(&chain.chain);
        chain.chain.replace(&mut next);
        chain.n += 1;
        st.sending = Some(chain);
        let head = header.encode();
        let (cipher, nonce) =
            message_cipher(mk.bytes(), header.n).ok_or(NativeError::EncryptFailed)?;
        // Sealed in place in the frame, sized up front so the plaintext is never reallocated;
        // wiped if sealing fails and the plaintext would stay.
        let mut frame = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        frame.extend_from_slice(&head);
        frame.extend_from_slice(plaintext);
        let sealed = with_aad(&head, ad, |aad| {
            cipher.seal_in_place_separate_tag(nonce, Aad::from(aad), &mut frame[HEADER_LEN..])
        });
        match sealed {
            Ok(tag) => {
                frame.extend_from_slice(tag.as_ref());
                Ok(frame)
            }
            Err(_) => {
                frame.zeroize();
                Err(NativeError::EncryptFailed)
            }
        }
    }

    /// Decrypts one frame. `ad` is [`super::message_context`]`(room, peer uid, own uid)`. On any
    /// error the session is unchanged.
    pub fn decrypt(&mut self, frame: &[u8], ad: &[u8]) -> Result<SecretBytes, NativeError> {
        let (header, head, ct) = Header::decode(frame)?;
        if header.sender_tag == self.own_tag && header.receiver_tag == self.peer_tag {
            return Err(NativeError::Reflection);
        }
        if header.receiver_tag != self.own_tag || header.sender_tag != self.peer_tag {
            return Err(NativeError::NotForThisInstance);
        }
        with_aad(head, ad, |aad| self.decrypt_with_aad(&header, aad, ct))
    }

    /// [`Self::decrypt`] once the header is checked and the associated data assembled. Nothing
    /// is written before the frame opened: a skipped key is looked up (removed only after
    /// `open`), any other key is derived into a [`Candidate`] and committed on success.
    fn decrypt_with_aad(
        &mut self,
        header: &Header,
        aad: &[u8],
        ct: &[u8],
    ) -> Result<SecretBytes, NativeError> {
        let st = &mut self.state;
        let id = (header.ratchet, header.n);
        if let Some(sk) = st.skipped.get(&id) {
            let pt = open(sk.key.expose(), header.n, aad, ct)?;
            st.skipped.remove(&id);
            st.finish_receive();
            return Ok(pt);
        }
        let candidate = st.candidate(header)?;
        let pt = open(candidate.mk.bytes(), header.n, aad, ct)?;
        st.commit(header, candidate);
        Ok(pt)
    }

    /// A copy of the whole state, to show that a later snapshot cannot open earlier frames.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> NativeSession {
        NativeSession {
            own_tag: self.own_tag,
            peer_tag: self.peer_tag,
            peer_identity: self.peer_identity,
            sas: self.sas.clone(),
            end_key: self.end_key.clone(),
            state: self.state.clone(),
        }
    }
}

fn open(mk: &[u8; 32], n: u32, aad: &[u8], ct: &[u8]) -> Result<SecretBytes, NativeError> {
    let (cipher, nonce) = message_cipher(mk, n).ok_or(NativeError::DecryptFailed)?;
    let mut buf = SecretBytes::new(ct.to_vec());
    let len = cipher
        .open_in_place(nonce, Aad::from(aad), buf.vec_mut())
        .map_err(|_| NativeError::DecryptFailed)?
        .len();
    buf.vec_mut().truncate(len);
    Ok(buf)
}

/// What a frame that is not under a skipped key would do to the receiving side, derived before
/// it is authenticated. Only the frame's own message key and the chain key after it are kept
/// (on the stack, wiped on drop); keys skipped on the way are derived again, into locked memory,
/// by [`State::commit`] — so a forged frame that claims a far position or a new ratchet key
/// costs one DH and at most [`MAX_SKIP`] chain steps, and stores nothing.
struct Candidate {
    /// `KDF_RK` output (new root ‖ new receiving chain key) when the frame starts a new peer
    /// ratchet key.
    step: Option<Zeroizing<[u8; 64]>>,
    /// The frame's message key.
    mk: MessageKey,
    /// The receiving chain key after it.
    next: Zeroizing<[u8; 32]>,
}

impl State {
    /// The keys for `header`, checked exactly as committing would (window, counters, a ratchet
    /// step needing our own key), without changing anything.
    fn candidate(&self, header: &Header) -> Result<Candidate, NativeError> {
        let too_far = |from: u32, until: u32| until > from && until - from > MAX_SKIP;
        let (step, mut chain, nr) = if header.ratchet != self.peer_ratchet {
            // The old chain's keys up to PN would be kept: refuse a frame that needs too many.
            if self.receiving.is_some() && too_far(self.nr, header.pn) {
                return Err(NativeError::TooFarAhead);
            }
            // The peer only moves to a new key after seeing ours; without one this frame is bogus.
            let ours = self.sending.as_ref().ok_or(NativeError::KeyUnavailable)?;
            let okm = kdf_rk_bytes(&self.root, dh(&ours.ratchet, &header.ratchet)?.as_ref());
            let mut chain = Zeroizing::new([0u8; 32]);
            chain.copy_from_slice(&okm[32..]);
            (Some(okm), chain, 0)
        } else {
            let receiving = self.receiving.as_ref().ok_or(NativeError::KeyUnavailable)?;
            if header.n < self.nr {
                return Err(NativeError::KeyUnavailable);
            }
            (None, Zeroizing::new(*receiving.expose()), self.nr)
        };
        if too_far(nr, header.n) {
            return Err(NativeError::TooFarAhead);
        }
        header
            .n
            .checked_add(1)
            .ok_or(NativeError::CounterExhausted)?;
        for _ in nr..header.n {
            let (_, next) = kdf_ck_bytes(&chain);
            chain = next;
        }
        let (mk, next) = kdf_ck_bytes(&chain);
        Ok(Candidate { step, mk, next })
    }

    /// Applies a candidate whose frame opened: the receive step (keeping the old chain's keys up
    /// to PN), the keys skipped in the new position's chain, the chain moved past the frame.
    fn commit(&mut self, header: &Header, candidate: Candidate) {
        let Candidate { step, mut next, .. } = candidate;
        if let Some(okm) = step {
            self.store_skipped(header.pn);
            if let Some(ours) = self.sending.take() {
                self.pn = ours.n;
            }
            self.root = locked_from(&okm[..32]);
            self.receiving = Some(locked_from(&okm[32..]));
            self.peer_ratchet = header.ratchet;
            self.nr = 0;
        }
        self.store_skipped(header.n);
        if let Some(chain) = self.receiving.as_mut() {
            chain.replace(&mut next);
        }
        // `candidate` checked that this does not overflow.
        self.nr = header.n.saturating_add(1);
        self.finish_receive();
    }

    /// Stores the keys of the current receiving chain up to (not including) message `until`,
    /// evicting the oldest beyond [`MAX_SKIPPED_KEYS`]. The window was checked by
    /// [`State::candidate`].
    fn store_skipped(&mut self, until: u32) {
        let Some(mut chain) = self.receiving.take() else {
            return;
        };
        while self.nr < until {
            let (mk, mut next) = kdf_ck(&chain);
            chain.replace(&mut next);
            let entry = SkippedKey {
                key: mk.lock(),
                stored_at: self.received_total,
                seq: self.next_seq,
            };
            self.next_seq += 1;
            self.skipped.insert((self.peer_ratchet, self.nr), entry);
            self.nr += 1;
        }
        self.receiving = Some(chain);
        while self.skipped.len() > MAX_SKIPPED_KEYS {
            let oldest = self
                .skipped
                .iter()
                .min_by_key(|(_, v)| v.seq)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => self.skipped.remove(&k),
                None => break,
            };
        }
    }

    /// Bookkeeping after a successful decryption: count it and expire old skipped keys.
    fn finish_receive(&mut self) {
        self.received_total += 1;
        let now = self.received_total;
        self.skipped
            .retain(|_, v| now.saturating_sub(v.stored_at) <= SKIPPED_KEY_LIFETIME);
    }
}
