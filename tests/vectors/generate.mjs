// Produces tests/vectors/rocketchat-otr-v1.json, the stock Rocket.Chat OTR vectors
// (docs/PROTOCOL.md §1), from the fixed inputs in tests/vectors/inputs.json, with nothing but what
// a browser has: WebCrypto (`globalThis.crypto.subtle`) and the `ejson` package (installed under
// tests/stock-peer). It deliberately does not use tests/stock-peer/otr-crypto.mjs, which the
// vectors are there to check.
//
//   node tests/vectors/generate.mjs            rewrite rocketchat-otr-v1.json from inputs.json
//   node tests/vectors/generate.mjs --check    exit 1 unless the file is what the inputs give
//   node tests/vectors/generate.mjs --fresh N  draw N new cases (random keys, ids, IVs) into
//                                              inputs.json first, as the first vectors were made
//
// Every output is a function of the inputs (ECDH, SHA-256 and AES-GCM with a given IV are
// deterministic), so regenerating is reproducible byte for byte; the stock-peer tests check it.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', 'stock-peer', 'package.json'));
const EJSON = require('ejson');

const subtle = globalThis.crypto.subtle;
const ECDH = { name: 'ECDH', namedCurve: 'P-256' };

export const INPUTS = join(here, 'inputs.json');
export const OUTPUT = join(here, 'rocketchat-otr-v1.json');

const SCHEME =
  'Rocket.Chat web client OTR (ECDH P-256 JWK, SHA-256 truncated to 16 bytes, AES-128-GCM, ' +
  '12-byte IV prepended, EJSON $binary)';

function fromHex(hex) {
  return Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function toHex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

// PKCS#8 for a P-256 private key without its public point: SEQUENCE { version 0,
// AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, OCTET STRING { ECPrivateKey { 1, d } } }.
// WebCrypto computes the public point on import.
const PKCS8_P256_PREFIX = fromHex(
  '308141020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420',
);

/** The private key with scalar `dHex`, exported as the JWK Node's WebCrypto gives. */
async function privateJwk(dHex) {
  const d = fromHex(dHex);
  if (d.length !== 32) throw new Error(`a P-256 scalar is 32 bytes, not ${d.length}`);
  const der = new Uint8Array(PKCS8_P256_PREFIX.length + 32);
  der.set(PKCS8_P256_PREFIX, 0);
  der.set(d, PKCS8_P256_PREFIX.length);
  const key = await subtle.importKey('pkcs8', der, ECDH, true, ['deriveBits']);
  return subtle.exportKey('jwk', key);
}

/** The public half as the `publicKey` signalling field (`EJSON.stringify` of the exported JWK). */
async function publicKeyField(jwk) {
  const pub = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, ECDH, true, []);
  return EJSON.stringify(await subtle.exportKey('jwk', pub));
}

async function seal(rawKey, plaintext, ivHex) {
  const key = await subtle.importKey('raw', rawKey, { name: 'AES-GCM' }, false, ['encrypt']);
  const iv = fromHex(ivHex);
  const sealed = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv }, key, new TextEncoder().encode(plaintext)));
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv, 0);
  out.set(sealed, iv.length);
  return EJSON.stringify(out);
}

async function buildCase(input) {
  const alice = await privateJwk(input.alice_d_hex);
  const bob = await privateJwk(input.bob_d_hex);
  const alicePubField = await publicKeyField(alice);
  const bobPubField = await publicKeyField(bob);
  const aliceKey = await subtle.importKey('jwk', alice, ECDH, false, ['deriveBits']);
  const bobKey = await subtle.importKey('jwk', bob, ECDH, false, ['deriveBits']);
  const bobPub = await subtle.importKey('jwk', EJSON.parse(bobPubField), ECDH, false, []);
  const alicePub = await subtle.importKey('jwk', EJSON.parse(alicePubField), ECDH, false, []);
  const z = new Uint8Array(await subtle.deriveBits({ ...ECDH, public: bobPub }, aliceKey, 256));
  const z2 = new Uint8Array(await subtle.deriveBits({ ...ECDH, public: alicePub }, bobKey, 256));
  if (toHex(z) !== toHex(z2)) throw new Error(`${input.name}: the two sides disagree`);
  const aesKey = new Uint8Array(await subtle.digest('SHA-256', z)).slice(0, 16);

  // The stock plaintexts (docs/PROTOCOL.md §2.1, §2.2), in the stock member order.
  const m = input.message;
  const messagePlaintext = EJSON.stringify({ _id: m._id, text: m.text, userId: m.userId, ack: m.ack, ts: new Date(m.ts_ms) });
  const ackPlaintext = EJSON.stringify({ text: m.ack, ack: input.ack_reply_token });

  return {
    name: input.name,
    alice_private_jwk: alice,
    alice_public_key_field: alicePubField,
    bob_private_jwk: bob,
    bob_public_key_field: bobPubField,
    ecdh_shared_x_hex: toHex(z),
    aes_128_gcm_key_hex: toHex(aesKey),
    message_iv_hex: input.message_iv_hex,
    message_plaintext: messagePlaintext,
    message_msg_field: await seal(aesKey, messagePlaintext, input.message_iv_hex),
    ack_iv_hex: input.ack_iv_hex,
    ack_plaintext: ackPlaintext,
    ack_field: await seal(aesKey, ackPlaintext, input.ack_iv_hex),
  };
}

/** The vectors file's exact text for the given inputs. */
export async function generate(inputs) {
  const cases = [];
  for (const input of inputs.cases) {
    cases.push(await buildCase(input));
  }
  const doc = {
    scheme: SCHEME,
    generated_with: 'tests/vectors/generate.mjs from tests/vectors/inputs.json (WebCrypto, ejson npm package)',
    cases,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

// Meteor's `Random.id` alphabet and the stock ack-token length (docs/PROTOCOL.md §2.3).
const ALPHABET = '23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz';
function randomId(n) {
  let out = '';
  const byte = new Uint8Array(1);
  for (let i = 0; i < n; i += 1) {
    do globalThis.crypto.getRandomValues(byte);
    while (byte[0] >= 220);
    out += ALPHABET[byte[0] % 55];
  }
  return out;
}

async function freshScalarHex() {
  const pair = await subtle.generateKey(ECDH, true, ['deriveBits']);
  const jwk = await subtle.exportKey('jwk', pair.privateKey);
  return Buffer.from(jwk.d, 'base64url').toString('hex');
}

async function freshCase(i) {
  const hex = (n) => toHex(globalThis.crypto.getRandomValues(new Uint8Array(n)));
  return {
    name: `fresh-${i}`,
    alice_d_hex: await freshScalarHex(),
    bob_d_hex: await freshScalarHex(),
    message: { _id: randomId(17), text: `hello ${i}`, userId: randomId(17), ack: randomId(20 + (i % 21)), ts_ms: Date.now() },
    message_iv_hex: hex(12),
    ack_reply_token: randomId(20 + ((i * 7) % 21)),
    ack_iv_hex: hex(12),
  };
}

async function main(argv) {
  const inputs = JSON.parse(readFileSync(INPUTS, 'utf8'));
  const fresh = argv.indexOf('--fresh');
  if (fresh >= 0) {
    const n = Number(argv[fresh + 1] ?? '3');
    inputs.cases = [];
    for (let i = 0; i < n; i += 1) inputs.cases.push(await freshCase(i));
    writeFileSync(INPUTS, `${JSON.stringify(inputs, null, 2)}\n`);
  }
  const text = await generate(inputs);
  if (argv.includes('--check')) {
    if (readFileSync(OUTPUT, 'utf8') !== text) {
      console.error(`${OUTPUT} is not what ${INPUTS} gives; run node tests/vectors/generate.mjs`);
      process.exit(1);
    }
    console.log(`${OUTPUT}: reproduced from ${INPUTS}`);
    return;
  }
  writeFileSync(OUTPUT, text);
  console.log(`wrote ${OUTPUT} (${inputs.cases.length} cases)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main(process.argv.slice(2));
}
