// Node's WebCrypto reference for the otrd benchmark report: what the stock Rocket.Chat client's
// primitives cost in a JavaScript runtime. Prints one JSON object (microseconds per operation):
//   {"aes_gcm_roundtrip_us": {"64": …, "256": …, "4096": …}, "p256_handshake_us": …}
// aes_gcm_roundtrip = encrypt + decrypt of one message (AES-128-GCM, random 12-byte IV), each
// awaited as the stock client awaits it; p256_handshake = generateKey (ECDH P-256) + deriveBits.
// Usage: node webcrypto-bench.mjs [--quick]
const { subtle } = globalThis.crypto;
const quick = process.argv.includes('--quick');
const budgetMs = quick ? 5 : 600;

// Best-of-samples µs per call (the machine is shared: interference only adds time) over samples of `batch` awaited calls, for about budgetMs in total.
async function perOpUs(fn) {
  // Warm-up (JIT, lazy init, thread pool) for a fifth of the budget.
  const warm = performance.now() + budgetMs / 5;
  do await fn(); while (performance.now() < warm);
  let batch = 1;
  while (!quick) {
    const t = performance.now();
    for (let i = 0; i < batch; i++) await fn();
    if (performance.now() - t >= budgetMs / 50) break;
    batch *= 2;
  }
  const samples = [];
  const end = performance.now() + budgetMs;
  do {
    const t = performance.now();
    for (let i = 0; i < batch; i++) await fn();
    samples.push(((performance.now() - t) * 1000) / batch);
  } while (performance.now() < end && !quick);
  return Math.min(...samples);
}

const key = await subtle.importKey('raw', crypto.getRandomValues(new Uint8Array(16)), 'AES-GCM', false, [
  'encrypt',
  'decrypt',
]);
const aes = {};
for (const size of [64, 256, 4096]) {
  const data = new Uint8Array(size).fill(0x61);
  aes[size] = await perOpUs(async () => {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await subtle.encrypt({ name: 'AES-GCM', iv }, key, data);
    await subtle.decrypt({ name: 'AES-GCM', iv }, key, ct);
  });
}
const peer = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
const p256 = await perOpUs(async () => {
  const ours = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  await subtle.deriveBits({ name: 'ECDH', public: peer.publicKey }, ours.privateKey, 256);
});
console.log(JSON.stringify({ aes_gcm_roundtrip_us: aes, p256_handshake_us: p256, node: process.version }));
