// A tiny Rocket.Chat 7.x stand-in for the stock peer's own tests: just enough DDP + REST to
// relay OTR between two peers (PROTOCOL.md 3-7). The full simulator with fault injection is
// rcsim (Rust); this mock only exists so the peer can be tested without building it.

import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import EJSON from 'ejson';
import { WebSocketServer } from 'ws';

const sha = (s) => createHash('sha256').update(s).digest('hex');
const id = () => randomBytes(9).toString('base64url').slice(0, 17);

/**
 * Start a mock server with `users` = [{username, password}], all sharing 1:1 DMs.
 * Resolves `{ url, close(), users: Map username → {uid, token}, calls: [{uid, method, params}] }`.
 */
export async function startMock(users) {
  const byName = new Map();
  for (const u of users) {
    byName.set(u.username, { uid: id(), token: id(), username: u.username, digest: sha(u.password) });
  }
  const list = [...byName.values()];
  const rooms = [];
  for (let i = 0; i < list.length; i += 1) {
    for (let j = i + 1; j < list.length; j += 1) {
      rooms.push({ _id: id(), t: 'd', uids: [list[i].uid, list[j].uid], usernames: [list[i].username, list[j].username] });
    }
  }
  /** Connections with their uid and subscriptions (name + eventName). */
  const conns = new Set();
  const calls = [];

  const emitTo = (name, eventName, args, except) => {
    for (const c of conns) {
      if (c === except) continue;
      if (c.subs.has(`${name}\n${eventName}`)) {
        c.send({ msg: 'changed', collection: name, id: 'id', fields: { eventName, args } });
      }
    }
  };

  const http = createServer((req, res) => {
    const user = list.find((u) => u.uid === req.headers['x-user-id'] && u.token === req.headers['x-auth-token']);
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!user) return reply(401, { success: false, error: 'unauthorized' });
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      if (req.method === 'POST' && url.pathname === '/api/v1/chat.otr') {
        const { roomId, type } = JSON.parse(body);
        calls.push({ uid: user.uid, method: 'rest chat.otr', params: [roomId, type] });
        const msg = { _id: id(), t: type, rid: roomId, ts: new Date(), msg: user.username, u: { _id: user.uid, username: user.username } };
        emitTo('stream-room-messages', roomId, [msg]);
        return reply(200, { success: true });
      }
      if (req.method === 'GET' && url.pathname === '/api/v1/users.info') {
        const found = list.find((u) => u.uid === url.searchParams.get('userId'));
        return found ? reply(200, { success: true, user: { _id: found.uid, username: found.username } }) : reply(400, { success: false });
      }
      return reply(404, { success: false });
    });
  });
  const wss = new WebSocketServer({ server: http, path: '/websocket' });
  wss.on('connection', (ws) => {
    const conn = { uid: null, subs: new Set(), send: (f) => ws.send(EJSON.stringify(f)) };
    conns.add(conn);
    ws.on('close', () => conns.delete(conn));
    ws.on('message', (data) => {
      const f = EJSON.parse(data.toString());
      if (f.msg === 'connect') return conn.send({ msg: 'connected', session: id() });
      if (f.msg === 'sub') {
        conn.subs.add(`${f.name}\n${f.params[0]}`);
        return conn.send({ msg: 'ready', subs: [f.id] });
      }
      if (f.msg !== 'method') return undefined;
      calls.push({ uid: conn.uid, method: f.method, params: f.params });
      const result = (r) => conn.send(r === undefined ? { msg: 'result', id: f.id } : { msg: 'result', id: f.id, result: r });
      const me = list.find((u) => u.uid === conn.uid);
      switch (f.method) {
        case 'login': {
          const u = byName.get(f.params[0]?.user?.username);
          if (!u || u.digest !== f.params[0]?.password?.digest) {
            return conn.send({ msg: 'result', id: f.id, error: { error: 403, reason: 'Incorrect password' } });
          }
          conn.uid = u.uid;
          return result({ id: u.uid, token: u.token, type: 'password' });
        }
        case 'rooms/get':
          return result(rooms.filter((r) => r.uids.includes(conn.uid)));
        case 'stream-notify-user':
          emitTo('stream-notify-user', f.params[0], f.params.slice(1), conn);
          return result();
        case 'sendMessage': {
          const m = { ...f.params[0], ts: new Date(), u: { _id: me.uid, username: me.username, name: me.username } };
          emitTo('stream-room-messages', m.rid, [m, { _id: me.uid }, {}]);
          return result(m);
        }
        case 'updateOTRAck': {
          const { message, ack } = f.params[0];
          emitTo('stream-room-messages', message.rid, [{ ...message, otrAck: ack }]);
          return result();
        }
        default:
          return result();
      }
    });
  });
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address();
  return {
    url: `http://127.0.0.1:${port}`,
    users: byName,
    calls,
    close: () => new Promise((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      http.close(resolve);
      http.closeAllConnections();
    }),
  };
}
