// The stock Rocket.Chat web client's OTR cryptography (PROTOCOL.md sections 1 and 2), written
// with nothing but what a browser has: WebCrypto (`globalThis.crypto.subtle`), TextEncoder and
// the `ejson` package. Nothing here may use node:crypto: the point of this module is to prove
// that otrd matches what the browser primitives produce.

import EJSON from 'ejson';

const subtle = globalThis.crypto.subtle;

/** The ECDH parameters every stock call uses. */
const ECDH = { name: 'ECDH', namedCurve: 'P-256' };

/** Meteor's `Random` alphabet: no 0/1/I/O/U/V/l (PROTOCOL.md 2.3). */
const UNMISTAKABLE_CHARS = '23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz';

/** Meteor `Random.fraction()`: a uniform double in [0, 1) from the CSPRNG. */
export function randomFraction() {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  // 53 random bits, like Meteor's generator.
  return (words[0] * 2 ** 21 + (words[1] >>> 11)) / 2 ** 53;
}

/**
 * Meteor `Random.id(n)`: draws characters while `i < n`, so a fractional n yields ceil(n)
 * characters (the stock ack token relies on that).
 */
export function randomId(n = 17) {
  let out = '';
  for (let i = 0; i < n; i += 1) {
    const byte = new Uint8Array(1);
    // Rejection sampling keeps the choice uniform over the 55 characters.
    do {
      globalThis.crypto.getRandomValues(byte);
    } while (byte[0] >= 220);
    out += UNMISTAKABLE_CHARS[byte[0] % 55];
  }
  return out;
}

/** The stock ack token: `Random.id((Random.fraction() + 1) * 20)`, 20 to 40 characters. */
export function randomAckToken() {
  return randomId((randomFraction() + 1) * 20);
}

/** A fresh ephemeral key pair, exactly as the stock client makes it (private key non-extractable). */
export async function generateKeyPair() {
  return subtle.generateKey(ECDH, false, ['deriveKey', 'deriveBits']);
}

/**
 * Export a public key as a JWK object in the member order a browser produces
 * (`crv, ext, key_ops, kty, x, y`), PROTOCOL.md 1.2. Node orders them differently.
 */
export async function exportJwk(publicKey) {
  const jwk = await subtle.exportKey('jwk', publicKey);
  return { crv: jwk.crv, ext: jwk.ext, key_ops: jwk.key_ops, kty: jwk.kty, x: jwk.x, y: jwk.y };
}

/** The `publicKey` signalling field: `EJSON.stringify(jwk)`. */
export async function exportPublicKeyField(publicKey) {
  return EJSON.stringify(await exportJwk(publicKey));
}

/** Import a peer's `publicKey` field as the stock client does (`EJSON.parse`, non-extractable, no usages). */
export async function importPublicKeyField(field) {
  return subtle.importKey('jwk', EJSON.parse(field), ECDH, false, []);
}

/** Import a private JWK (with `d`); only the test vectors need this. */
export async function importPrivateJwk(jwk) {
  return subtle.importKey('jwk', jwk, ECDH, false, ['deriveBits']);
}

/** ECDH `deriveBits(256)`: the raw x-coordinate of the shared point. */
export async function deriveSharedBits(privateKey, peerPublicKey) {
  return new Uint8Array(await subtle.deriveBits({ ...ECDH, public: peerPublicKey }, privateKey, 256));
}

/** SHA-256 of the shared bits truncated to 16 bytes: the raw AES-128 session key (PROTOCOL.md 1.3). */
export async function sessionKeyBytes(privateKey, peerPublicKey) {
  const bits = await deriveSharedBits(privateKey, peerPublicKey);
  const hash = new Uint8Array(await subtle.digest('SHA-256', bits));
  return hash.slice(0, 16);
}

/** Import raw session-key bytes as the non-extractable AES-GCM key the stock client holds. */
export async function importSessionKey(raw) {
  return subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/** The whole derivation: my private key + peer public key → AES-GCM CryptoKey. */
export async function deriveSessionKey(privateKey, peerPublicKey) {
  return importSessionKey(await sessionKeyBytes(privateKey, peerPublicKey));
}

/**
 * Encrypt bytes or a string. A string is wrapped as the stock `encryptText(string)` does:
 * `{"text": <string>, "ack": <new token>}`. Returns the `{"$binary":"…"}` string (PROTOCOL.md 1.4/1.5).
 * `iv` may be given (12 bytes) to reproduce vectors; otherwise it is random.
 */
export async function encryptText(key, data, iv) {
  let bytes = data;
  if (typeof data === 'string') {
    bytes = new TextEncoder().encode(EJSON.stringify({ text: data, ack: randomAckToken() }));
  }
  const nonce = iv ?? globalThis.crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: nonce }, key, bytes));
  const out = new Uint8Array(nonce.length + sealed.length);
  out.set(nonce, 0);
  out.set(sealed, nonce.length);
  return EJSON.stringify(out);
}

/** The stock chat-message plaintext (PROTOCOL.md 2.1), as UTF-8 bytes. */
export function messagePlaintext({ _id, text, userId, ack, ts }) {
  return new TextEncoder().encode(EJSON.stringify({ _id, text, userId, ack, ts }));
}

/** Encrypt a chat message the stock way: fresh ack token, the local clock as `ts`. */
export async function encryptMessage(key, { _id, text, userId }) {
  const ack = randomAckToken();
  const plaintext = messagePlaintext({ _id, text, userId, ack, ts: new Date() });
  return { msg: await encryptText(key, plaintext), ack };
}

/** Decrypt a `{"$binary":…}` string to the raw plaintext bytes. Throws on any failure. */
export async function decryptBytes(key, field) {
  const buf = EJSON.parse(field);
  if (!(buf instanceof Uint8Array) || buf.length < 28) {
    throw new Error('ciphertext is not an EJSON binary of at least 28 bytes');
  }
  const plain = await subtle.decrypt({ name: 'AES-GCM', iv: buf.slice(0, 12) }, key, buf.slice(12));
  return new Uint8Array(plain);
}

/** Decrypt and `EJSON.parse` the inner JSON (so `ts` comes back as a Date), as the stock client does. */
export async function decryptObject(key, field) {
  const text = new TextDecoder('utf-8').decode(await decryptBytes(key, field));
  return EJSON.parse(text);
}

/** Lower-case hex of a byte array (tests and logs of non-secret values). */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Bytes from lower-case hex. */
export function fromHex(hex) {
  if (hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) {
    throw new Error('not a hex string');
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}
