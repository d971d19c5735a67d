#!/usr/bin/env node
// A stand-in for a person using the stock Rocket.Chat web client's OTR, for interop tests.
//
//   node stock-peer.mjs --url http://127.0.0.1:PORT --user bob --password secret
//        [--auto-accept] [--accept-delay-ms N] [--auto-echo] [--ignore-invitations] [--debug]
//
// It logs in over DDP (password digest), resolves its DMs (`rooms/get`), subscribes to
// `<uid>/otr` and every DM's `stream-room-messages` (as if all DMs were open), and marks itself
// online. Commands arrive as JSON lines on stdin; events leave as JSON lines on stdout
// (diagnostics go to stderr).
//
// Commands: start | accept | decline | refresh | end  {"cmd":..,"peer":"alice"}
//           send {"cmd":"send","peer":"alice","text":"hi"} (plaintext fallback when not ESTABLISHED)
//           send_raw_signal {"cmd":"send_raw_signal","to_uid":"..","type":"..","payload":{..}}
//           call {"cmd":"call","method":"..","params":[..]} (any DDP method, for forging)
//           state {"cmd":"state","peer":"alice"} | quit {"cmd":"quit"}
// Events:   ready, state, invitation, key_refresh, ended_by_peer, message (plaintext: bool),
//           sent, delivered, system_message, otr_message_ignored, decrypt_failed,
//           ignored_signal, signal_sent, result, error.
// --auto-accept clicks Yes on every prompt after --accept-delay-ms (default 0);
// --ignore-invitations never clicks (the prompt times out after 10 s, like a person away);
// --auto-echo answers every received message with `echo: <text>`.

import { createInterface } from 'node:readline';

import { DdpClient } from './ddp.mjs';
import { OtrRoom } from './otr-room.mjs';

function parseArgs(argv) {
  const opts = { autoAccept: false, ignoreInvitations: false, autoEcho: false, acceptDelayMs: 0, debug: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      i += 1;
      if (i >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[i];
    };
    switch (arg) {
      case '--url': opts.url = value(); break;
      case '--user': opts.user = value(); break;
      case '--password': opts.password = value(); break;
      case '--auto-accept': opts.autoAccept = true; break;
      case '--ignore-invitations': opts.ignoreInvitations = true; break;
      case '--auto-echo': opts.autoEcho = true; break;
      case '--debug': opts.debug = true; break;
      case '--accept-delay-ms': {
        opts.acceptDelayMs = Number(value());
        if (!Number.isFinite(opts.acceptDelayMs) || opts.acceptDelayMs < 0) {
          throw new Error('--accept-delay-ms needs a non-negative number');
        }
        break;
      }
      default: throw new Error(`unknown argument ${arg}`);
    }
  }
  for (const required of ['url', 'user', 'password']) {
    if (!opts[required]) throw new Error(`--${required} is required`);
  }
  return opts;
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function sha256Hex(text) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

class StockClient {
  constructor(opts) {
    this.opts = opts;
    this.httpBase = opts.url.replace(/\/+$/, '');
    this.myUid = null;
    this.token = null;
    /** rid → OtrRoom for every 1:1 DM. */
    this.rooms = new Map();
    /** uid → username, learned from DM rooms. */
    this.usernames = new Map();
    this.chain = Promise.resolve();
    const wsUrl = `${this.httpBase.replace(/^http/, 'ws')}/websocket`;
    this.ddp = new DdpClient(wsUrl, {
      debug: opts.debug,
      onChanged: (collection, fields) => this.onChanged(collection, fields),
      onClose: () => {
        emit({ event: 'error', message: 'connection closed by the server' });
        process.exit(1);
      },
    });
    this.ctx = {
      myUid: null,
      ddp: this.ddp,
      options: opts,
      emit,
      enqueue: (fn) => this.enqueue(fn),
      rest: (path, body) => this.restPost(path, body),
      lookupUsername: (uid) => this.lookupUsername(uid),
    };
  }

  /** Everything that touches room state runs one step at a time, in arrival order. */
  enqueue(fn) {
    this.chain = this.chain.then(fn).catch((e) => emit({ event: 'error', message: e.message }));
    return this.chain;
  }

  async run() {
    await this.ddp.connect();
    const digest = await sha256Hex(this.opts.password);
    const { result } = await this.ddp.call('login', [
      { user: { username: this.opts.user }, password: { digest, algorithm: 'sha-256' } },
    ]);
    this.myUid = result.id;
    this.token = result.token;
    this.ctx.myUid = this.myUid;
    await this.ddp.subscribe('stream-notify-user', [`${this.myUid}/otr`, { useCollection: false, args: [] }]);
    await this.loadRooms();
    this.ddp.call('UserPresence:online', []).catch((e) => {
      process.stderr.write(`stock-peer: UserPresence:online: ${e.message}\n`);
    });
    emit({
      event: 'ready',
      uid: this.myUid,
      username: this.opts.user,
      rooms: [...this.rooms.values()].map((r) => ({ rid: r.rid, peer: r.peerUsername, peer_uid: r.peerUid })),
    });
  }

  /** `rooms/get`, keeping 1:1 DMs (type d, two uids, one of them me), subscribing new ones. */
  async loadRooms() {
    const { result } = await this.ddp.call('rooms/get', []);
    const list = Array.isArray(result) ? result : (result?.update ?? []);
    for (const room of list) {
      if (room?.t !== 'd' || !Array.isArray(room.uids) || room.uids.length !== 2 || this.rooms.has(room._id)) {
        continue;
      }
      if (!room.uids.includes(this.myUid)) continue;
      const peerUid = room.uids.find((u) => u !== this.myUid);
      if (!peerUid) continue;
      const peerUsername = (room.usernames ?? []).find((u) => u !== this.opts.user) ?? null;
      if (peerUsername) this.usernames.set(peerUid, peerUsername);
      const otrRoom = new OtrRoom(this.ctx, { rid: room._id, peerUid, peerUsername });
      this.rooms.set(room._id, otrRoom);
      await this.ddp.subscribe('stream-room-messages', [room._id, { useCollection: false, args: [] }]);
    }
  }

  findRoomByPeer(peer) {
    for (const room of this.rooms.values()) {
      if (room.peerUsername === peer || room.peerUid === peer) return room;
    }
    return null;
  }

  /** The DM with `peer` (username or uid), creating it as the stock "new DM" action would. */
  async roomForPeer(peer) {
    if (typeof peer !== 'string' || !peer) throw new Error('command needs "peer"');
    let room = this.findRoomByPeer(peer);
    if (room) return room;
    await this.loadRooms();
    room = this.findRoomByPeer(peer);
    if (room) return room;
    await this.ddp.call('createDirectMessage', [peer]);
    await this.loadRooms();
    room = this.findRoomByPeer(peer);
    if (!room) throw new Error(`no direct message room with ${peer}`);
    return room;
  }

  async lookupUsername(uid) {
    if (typeof uid !== 'string') return null;
    if (this.usernames.has(uid)) return this.usernames.get(uid);
    try {
      const url = `${this.httpBase}/api/v1/users.info?userId=${encodeURIComponent(uid)}`;
      const res = await fetch(url, { headers: this.authHeaders() });
      if (!res.ok) return null;
      const body = await res.json();
      const username = body?.user?.username ?? null;
      if (username) this.usernames.set(uid, username);
      return username;
    } catch {
      return null;
    }
  }

  authHeaders() {
    return { 'X-User-Id': this.myUid, 'X-Auth-Token': this.token };
  }

  async restPost(path, body) {
    const res = await fetch(`${this.httpBase}${path}`, {
      method: 'POST',
      headers: { ...this.authHeaders(), 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const parsed = text ? JSON.parse(text) : {};
    if (parsed.success === false) throw new Error(parsed.error ?? 'success:false');
    return parsed;
  }

  onChanged(collection, fields) {
    const args = Array.isArray(fields.args) ? fields.args : [];
    if (collection === 'stream-notify-user' && fields.eventName === `${this.myUid}/otr`) {
      const [type, data] = args;
      // The stock listener's only filter: both ids present and not an echo of myself.
      if (!data || !data.roomId || !data.userId || data.userId === this.myUid) return;
      this.enqueue(async () => {
        let room = this.rooms.get(data.roomId);
        if (!room) {
          await this.loadRooms();
          room = this.rooms.get(data.roomId);
        }
        if (!room) {
          emit({ event: 'ignored_signal', type, reason: 'unknown room', rid: data.roomId });
          return;
        }
        await room.onSignal(type, data);
      });
    } else if (collection === 'stream-room-messages') {
      const message = args[0];
      if (!message || typeof message !== 'object') return;
      const room = this.rooms.get(message.rid ?? fields.eventName);
      if (!room) return;
      this.enqueue(() => room.onRoomMessage(message));
    }
  }

  async command(cmd) {
    switch (cmd.cmd) {
      case 'start': return (await this.roomForPeer(cmd.peer)).start();
      case 'accept': return (await this.roomForPeer(cmd.peer)).accept();
      case 'decline': return (await this.roomForPeer(cmd.peer)).decline();
      case 'refresh': return (await this.roomForPeer(cmd.peer)).refresh();
      case 'end': return (await this.roomForPeer(cmd.peer)).end();
      case 'send': {
        if (typeof cmd.text !== 'string') throw new Error('send needs "text"');
        return (await this.roomForPeer(cmd.peer)).send(cmd.text);
      }
      case 'state': {
        const room = await this.roomForPeer(cmd.peer);
        return emit({ event: 'state', peer: room.peerUsername, rid: room.rid, state: room.state });
      }
      case 'send_raw_signal': {
        if (typeof cmd.to_uid !== 'string' || typeof cmd.type !== 'string') {
          throw new Error('send_raw_signal needs "to_uid" and "type"');
        }
        await this.ddp.call('stream-notify-user', [`${cmd.to_uid}/otr`, cmd.type, cmd.payload ?? {}]);
        return emit({ event: 'signal_sent', to_uid: cmd.to_uid, type: cmd.type });
      }
      case 'call': {
        if (typeof cmd.method !== 'string') throw new Error('call needs "method"');
        const { result, hasResult } = await this.ddp.call(cmd.method, cmd.params ?? []);
        return emit({ event: 'result', method: cmd.method, result: hasResult ? (result ?? null) : null, has_result: hasResult });
      }
      case 'quit':
        this.ddp.close();
        return process.exit(0);
      default:
        throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`);
    }
  }
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    emit({ event: 'error', message: e.message });
    process.exit(2);
  }
  const client = new StockClient(opts);
  try {
    await client.run();
  } catch (e) {
    emit({ event: 'error', message: `startup: ${e.message}` });
    process.exit(1);
  }
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch {
      emit({ event: 'error', message: 'command is not JSON' });
      return;
    }
    client.enqueue(() => client.command(cmd));
  });
  lines.on('close', () => {
    client.enqueue(() => client.command({ cmd: 'quit' }));
  });
}

main();
