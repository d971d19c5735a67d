// Two stock peers talking through the small mock relay: handshake, encrypted message with ack,
// key refresh, end, decline, and the stock weaknesses the peer must keep (plaintext fallback,
// unauthenticated acknowledge). rcsim-based interop lives in the Rust e2e crate.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startMock } from '../support/mock-server.mjs';

const peerScript = join(dirname(fileURLToPath(import.meta.url)), '..', 'stock-peer.mjs');
const WAIT_MS = 8000;

/** A running peer: `send(cmd)`, `waitFor(pred)` (consumes events up to the match), `stop()`. */
function startPeer(url, user, extra = []) {
  const child = spawn(process.execPath, [peerScript, '--url', url, '--user', user, '--password', `${user}-pw`, ...extra], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const queue = [];
  let wake = null;
  createInterface({ input: child.stdout }).on('line', (line) => {
    queue.push(JSON.parse(line));
    wake?.();
  });
  const peer = {
    child,
    send: (cmd) => child.stdin.write(`${JSON.stringify(cmd)}\n`),
    async waitFor(pred, what = 'event') {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        while (queue.length) {
          const ev = queue.shift();
          if (pred(ev)) return ev;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${user}: timed out waiting for ${what}`);
        let timer;
        await new Promise((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, left);
        });
        clearTimeout(timer);
        wake = null;
      }
    },
    stop() {
      child.kill();
    },
  };
  return peer;
}

const isState = (state) => (e) => e.event === 'state' && e.state === state;

async function pair(t, bobArgs = [], carolArgs = []) {
  const mock = await startMock([
    { username: 'bob', password: 'bob-pw' },
    { username: 'carol', password: 'carol-pw' },
  ]);
  const bob = startPeer(mock.url, 'bob', bobArgs);
  const carol = startPeer(mock.url, 'carol', carolArgs);
  t.after(async () => {
    bob.stop();
    carol.stop();
    await mock.close();
  });
  const bobReady = await bob.waitFor((e) => e.event === 'ready', 'ready');
  const carolReady = await carol.waitFor((e) => e.event === 'ready', 'ready');
  assert.equal(bobReady.rooms.length, 1);
  return { mock, bob, carol, bobUid: bobReady.uid, carolUid: carolReady.uid, rid: bobReady.rooms[0].rid };
}

test('handshake, encrypted unicode message, ack, refresh and end', async (t) => {
  const { mock, bob, carol } = await pair(t, [], ['--auto-accept']);
  bob.send({ cmd: 'start', peer: 'carol' });
  const inv = await carol.waitFor((e) => e.event === 'invitation', 'invitation');
  assert.equal(inv.refresh, false);
  assert.equal(inv.peer, 'bob');
  await carol.waitFor(isState('ESTABLISHED'), 'carol ESTABLISHED');
  await bob.waitFor(isState('ESTABLISHED'), 'bob ESTABLISHED');
  await bob.waitFor((e) => e.event === 'system_message' && e.type === 'user_joined_otr', 'user_joined_otr');

  const text = 'grüße ✓ 🔑 "quoted"\n';
  bob.send({ cmd: 'send', peer: 'carol', text });
  const sent = await bob.waitFor((e) => e.event === 'sent', 'sent');
  assert.equal(sent.plaintext, false);
  const got = await carol.waitFor((e) => e.event === 'message', 'message');
  assert.equal(got.text, text);
  assert.equal(got.id, sent.id);
  assert.equal(got.plaintext, false);
  const delivered = await bob.waitFor((e) => e.event === 'delivered', 'delivered');
  assert.equal(delivered.id, sent.id);

  // What reached the server: only ciphertext, and an ack echoing the message with the inner ts.
  const sendCall = mock.calls.find((c) => c.method === 'sendMessage');
  assert.equal(sendCall.params[0].t, 'otr');
  assert.ok(!sendCall.params[0].msg.includes('grüße'));
  assert.match(sendCall.params[0].msg, /^\{"\$binary":"[A-Za-z0-9+/=]+"\}$/);
  const ackCall = mock.calls.find((c) => c.method === 'updateOTRAck');
  assert.equal(ackCall.params[0].message._id, sent.id);
  assert.ok(ackCall.params[0].message.ts instanceof Date);
  assert.equal(ackCall.params[0].message.ts.getTime(), got.ts);
  const handshake = mock.calls.find((c) => c.method === 'stream-notify-user' && c.params[1] === 'handshake');
  assert.ok(!('refresh' in handshake.params[2]), 'a first handshake has no refresh member');
  assert.ok(handshake.params[2].publicKey.startsWith('{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC"'));

  // Refresh: auto-accepted by an ESTABLISHED peer with no prompt.
  bob.send({ cmd: 'refresh', peer: 'carol' });
  await carol.waitFor((e) => e.event === 'key_refresh', 'key_refresh');
  await bob.waitFor(isState('ESTABLISHED'), 'bob re-ESTABLISHED');
  await bob.waitFor((e) => e.event === 'system_message' && e.type === 'user_key_refreshed_successfully', 'refreshed');
  carol.send({ cmd: 'send', peer: 'bob', text: 'after refresh' });
  assert.equal((await bob.waitFor((e) => e.event === 'message', 'message')).text, 'after refresh');
  await carol.waitFor((e) => e.event === 'delivered', 'delivered');

  carol.send({ cmd: 'end', peer: 'bob' });
  await bob.waitFor(isState('NOT_STARTED'), 'NOT_STARTED');
  await bob.waitFor((e) => e.event === 'ended_by_peer', 'ended_by_peer');
});

test('decline reaches the initiator, and sends fall back to plaintext like the stock client', async (t) => {
  const { bob, carol } = await pair(t);
  bob.send({ cmd: 'start', peer: 'carol' });
  await carol.waitFor((e) => e.event === 'invitation', 'invitation');
  carol.send({ cmd: 'decline', peer: 'bob' });
  await bob.waitFor(isState('DECLINED'), 'DECLINED');
  bob.send({ cmd: 'send', peer: 'carol', text: 'in the clear' });
  assert.equal((await bob.waitFor((e) => e.event === 'sent', 'sent')).plaintext, true);
  const got = await carol.waitFor((e) => e.event === 'message', 'message');
  assert.equal(got.plaintext, true);
  assert.equal(got.text, 'in the clear');
});

test('an unsolicited acknowledge without a key pair drives the stock client to ERROR', async (t) => {
  const { bob, carol, bobUid, carolUid, rid } = await pair(t);
  // carol forges an acknowledge to bob, who never started: stock clients do not check the state.
  carol.send({ cmd: 'send_raw_signal', to_uid: bobUid, type: 'acknowledge', payload: { roomId: rid, userId: carolUid, publicKey: '{}' } });
  await carol.waitFor((e) => e.event === 'signal_sent', 'signal_sent');
  await bob.waitFor(isState('ERROR'), 'ERROR');
});
