// Reproduces every vector of tests/vectors/rocketchat-otr-v1.json and docs/PROTOCOL.md §1.6 with
// the stock peer's crypto module: decrypt their ciphertexts, re-encrypt with their IVs to their
// exact bytes, and derive the same session key from the private keys on both sides. And checks
// that tests/vectors/generate.mjs, run again on its fixed inputs, gives the committed file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import EJSON from 'ejson';

import {
  decryptBytes,
  decryptObject,
  deriveSessionKey,
  deriveSharedBits,
  encryptText,
  exportJwk,
  exportPublicKeyField,
  fromHex,
  generateKeyPair,
  importPrivateJwk,
  importPublicKeyField,
  importSessionKey,
  messagePlaintext,
  randomAckToken,
  randomId,
  sessionKeyBytes,
  toHex,
} from '../otr-crypto.mjs';
import { generate, INPUTS } from '../../vectors/generate.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const vectorFile = resolve(here, '..', '..', 'vectors', 'rocketchat-otr-v1.json');
const vectorText = readFileSync(vectorFile, 'utf8');
const vectors = JSON.parse(vectorText);

const enc = new TextEncoder();
const dec = new TextDecoder();

function b64urlFromHex(hex) {
  return Buffer.from(hex, 'hex').toString('base64url');
}

test('the vectors file has cases', () => {
  assert.ok(Array.isArray(vectors.cases) && vectors.cases.length >= 4);
  assert.equal(vectors.cases.at(-1).name, 'protocol-1.6');
});

test('regenerating the vectors from their fixed inputs gives the committed file byte for byte', async () => {
  const inputs = JSON.parse(readFileSync(INPUTS, 'utf8'));
  assert.equal(await generate(inputs), vectorText);
});

vectors.cases.forEach((c, i) => {
  test(`vector case ${i}: both sides derive the published shared secret and key`, async () => {
    const alice = await importPrivateJwk(c.alice_private_jwk);
    const bob = await importPrivateJwk(c.bob_private_jwk);
    const alicePub = await importPublicKeyField(c.alice_public_key_field);
    const bobPub = await importPublicKeyField(c.bob_public_key_field);

    assert.equal(toHex(await deriveSharedBits(alice, bobPub)), c.ecdh_shared_x_hex);
    assert.equal(toHex(await deriveSharedBits(bob, alicePub)), c.ecdh_shared_x_hex);
    assert.equal(toHex(await sessionKeyBytes(alice, bobPub)), c.aes_128_gcm_key_hex);
    assert.equal(toHex(await sessionKeyBytes(bob, alicePub)), c.aes_128_gcm_key_hex);
  });

  test(`vector case ${i}: decrypts their message and ack`, async () => {
    const alice = await importPrivateJwk(c.alice_private_jwk);
    const bobPub = await importPublicKeyField(c.bob_public_key_field);
    const key = await deriveSessionKey(alice, bobPub);

    assert.equal(dec.decode(await decryptBytes(key, c.message_msg_field)), c.message_plaintext);
    assert.equal(dec.decode(await decryptBytes(key, c.ack_field)), c.ack_plaintext);

    const inner = await decryptObject(key, c.message_msg_field);
    assert.ok(inner.ts instanceof Date, 'inner ts parses to a Date');
    const ack = await decryptObject(key, c.ack_field);
    assert.equal(ack.text, inner.ack, 'the ack acknowledges the message token');
  });

  test(`vector case ${i}: encrypts to their exact bytes with their IV`, async () => {
    const key = await importSessionKey(fromHex(c.aes_128_gcm_key_hex));
    const msg = await encryptText(key, enc.encode(c.message_plaintext), fromHex(c.message_iv_hex));
    assert.equal(msg, c.message_msg_field);
    const ack = await encryptText(key, enc.encode(c.ack_plaintext), fromHex(c.ack_iv_hex));
    assert.equal(ack, c.ack_field);
  });

  test(`vector case ${i}: the stock plaintext builder reproduces their plaintext`, () => {
    const parsed = JSON.parse(c.message_plaintext);
    const rebuilt = messagePlaintext({
      _id: parsed._id,
      text: parsed.text,
      userId: parsed.userId,
      ack: parsed.ack,
      ts: new Date(parsed.ts.$date),
    });
    assert.equal(dec.decode(rebuilt), c.message_plaintext);
  });
});

// docs/PROTOCOL.md §1.6: private keys given as hex scalars, public keys in browser member order.
const p16 = {
  dA: '10e484ac2ea48f214714540eedad121acfadc1347a7730e12111724663c94554',
  dB: '865dd9c8a37befa5cf3ab56b116aba36aa6d010e1530e5a9f250b0ce0fab6fc7',
  pubA: '{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo","y":"OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE"}',
  pubB: '{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"8_1TENHDdHBs0UNd-4VeZCnn49wGsI8GutgfcfnJHvg","y":"MAjVibTlLlBT1yyZLDVtVF6uDx2MwnPfQQ9yxCCzFtQ"}',
  z: '4f41cfeb910e7a46cd80c206f40fd02e927fac0d724c7227b130507aa19d40c4',
  key: 'bf9729bfa7a95b189ef66d966d3a57cf',
  msgPlain:
    '{"_id":"hRfXbqWcTPQ6JkYzN","text":"hello from A","userId":"aLiCe7yNSKqG3mZ2p","ack":"k3Jq7vYw2ZbT9xPmNcR4sLa8","ts":{"$date":1735732800123}}',
  msgIv: '000102030405060708090a0b',
  msgField:
    '{"$binary":"AAECAwQFBgcICQoLEvkmHYrVktOetyqxLrZKoOnl/XnkWbi6v73LCMrekmAGQZGYdwOjkb7dqR5KqIVhUonBZ4HNCFnANUZujbCwTiTmdxhPWAVpYdPHuIzmUQnBi0CT5qiYt/XWBpXRae7qrDV/664nKIlugW6+m0hLF3GznXShO/jNtzm37jK2sRDvP3cR0eq51dCjfZN613YhDtx4WBZK1k5uKwLM"}',
  ackPlain: '{"text":"k3Jq7vYw2ZbT9xPmNcR4sLa8","ack":"Z9yX8wW7uT6sR5qP4nM3kJ2hG"}',
  ackIv: '0b0a09080706050403020100',
  ackField:
    '{"$binary":"CwoJCAcGBQQDAgEAUqyxpibYR/Igx8Da6T+9XGL0aFCpUgGKBRu2NVbNH0lZ8WTDFlWaFdVSS36QJJzcZpyBOsj+/vHPTo1gvGd5p8915UYgU9KigbaILSxh2tTArM5wnw=="}',
};

function privateFromHex(dHex, pubField) {
  const pub = JSON.parse(pubField);
  return importPrivateJwk({ kty: 'EC', crv: 'P-256', x: pub.x, y: pub.y, d: b64urlFromHex(dHex) });
}

test('PROTOCOL 1.6: derivation from both private keys', async () => {
  const a = await privateFromHex(p16.dA, p16.pubA);
  const b = await privateFromHex(p16.dB, p16.pubB);
  const pubA = await importPublicKeyField(p16.pubA);
  const pubB = await importPublicKeyField(p16.pubB);
  assert.equal(toHex(await deriveSharedBits(a, pubB)), p16.z);
  assert.equal(toHex(await deriveSharedBits(b, pubA)), p16.z);
  assert.equal(toHex(await sessionKeyBytes(a, pubB)), p16.key);
  assert.equal(toHex(await sessionKeyBytes(b, pubA)), p16.key);
});

test('PROTOCOL 1.6: message and ack encrypt to the exact field and decrypt back', async () => {
  const a = await privateFromHex(p16.dA, p16.pubA);
  const key = await deriveSessionKey(a, await importPublicKeyField(p16.pubB));
  const msg = await encryptText(key, enc.encode(p16.msgPlain), fromHex(p16.msgIv));
  assert.equal(msg, p16.msgField);
  assert.equal(msg.length, 238);
  assert.equal(EJSON.parse(msg).length, 168);
  const ack = await encryptText(key, enc.encode(p16.ackPlain), fromHex(p16.ackIv));
  assert.equal(ack, p16.ackField);
  assert.equal(dec.decode(await decryptBytes(key, p16.msgField)), p16.msgPlain);
  assert.equal(dec.decode(await decryptBytes(key, p16.ackField)), p16.ackPlain);
});

test('exported public keys use the browser member order and round-trip', async () => {
  const pair = await generateKeyPair();
  assert.equal(pair.privateKey.extractable, false);
  const jwk = await exportJwk(pair.publicKey);
  assert.deepEqual(Object.keys(jwk), ['crv', 'ext', 'key_ops', 'kty', 'x', 'y']);
  assert.equal(jwk.crv, 'P-256');
  assert.equal(jwk.kty, 'EC');
  assert.equal(jwk.ext, true);
  assert.deepEqual(jwk.key_ops, []);
  assert.equal(jwk.x.length, 43);
  assert.equal(jwk.y.length, 43);
  const field = await exportPublicKeyField(pair.publicKey);
  assert.ok(field.startsWith('{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"'));
  await importPublicKeyField(field);
});

test('fresh key pairs agree on the session key and a random-IV round trip works', async () => {
  const a = await generateKeyPair();
  const b = await generateKeyPair();
  const ka = await sessionKeyBytes(a.privateKey, await importPublicKeyField(await exportPublicKeyField(b.publicKey)));
  const kb = await sessionKeyBytes(b.privateKey, await importPublicKeyField(await exportPublicKeyField(a.publicKey)));
  assert.equal(toHex(ka), toHex(kb));
  const key = await importSessionKey(ka);
  const field = await encryptText(key, 'k3Jq7vYw2ZbT9xPmNcR4sLa8');
  const inner = await decryptObject(key, field);
  assert.equal(inner.text, 'k3Jq7vYw2ZbT9xPmNcR4sLa8');
  assert.ok(inner.ack.length >= 20 && inner.ack.length <= 40);
});

test('tampered ciphertext fails to decrypt', async () => {
  const key = await importSessionKey(fromHex(p16.key));
  const bytes = EJSON.parse(p16.msgField);
  bytes[20] ^= 1;
  await assert.rejects(decryptBytes(key, EJSON.stringify(bytes)));
  await assert.rejects(decryptBytes(key, '{"$binary":"AAAA"}'));
});

test('Random.id tokens use the Meteor alphabet and lengths', () => {
  assert.match(randomId(), /^[23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz]{17}$/);
  for (let i = 0; i < 200; i += 1) {
    const t = randomAckToken();
    assert.ok(t.length >= 20 && t.length <= 40, `ack token length ${t.length}`);
  }
});
