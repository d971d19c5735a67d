// A minimal Meteor DDP client over a websocket (PROTOCOL.md section 7), the way the stock web
// client talks to Rocket.Chat: EJSON text frames, numbered methods, subscriptions that answer
// `ready`/`nosub`, and stream events as `changed` frames. It owns the socket and nothing else.

import EJSON from 'ejson';
import WebSocket from 'ws';

/** An error the server returned for a method or subscription, with its DDP error object. */
export class DdpError extends Error {
  constructor(what, error) {
    super(`${what} failed: ${error?.reason ?? error?.message ?? error?.error ?? 'unknown error'}`);
    this.ddp = error;
  }
}

/** One DDP connection. `onChanged(collection, fields)` receives stream events. */
export class DdpClient {
  constructor(wsUrl, { onChanged, onClose, debug }) {
    this.wsUrl = wsUrl;
    this.onChanged = onChanged;
    this.onClose = onClose;
    this.debug = debug;
    this.nextId = 1;
    /** id → {resolve, reject, what} for methods and subscriptions awaiting an answer. */
    this.pending = new Map();
    this.ws = null;
  }

  /** Open the socket and complete the DDP `connect` handshake. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.wsUrl);
      this.ws = ws;
      let connected = false;
      ws.on('open', () => {
        this.sendFrame({ msg: 'connect', version: '1', support: ['1', 'pre2', 'pre1'] });
      });
      ws.on('message', (data) => {
        let frame;
        try {
          frame = EJSON.parse(data.toString('utf8'));
        } catch (e) {
          this.log(`unparsable frame: ${e.message}`);
          return;
        }
        if (!connected) {
          if (frame.msg === 'connected') {
            connected = true;
            resolve(frame.session);
          } else if (frame.msg === 'failed') {
            reject(new Error(`DDP connect refused (server wants version ${frame.version})`));
          }
          return;
        }
        this.dispatch(frame);
      });
      ws.on('error', (e) => {
        if (!connected) {
          reject(e);
        }
        this.log(`websocket error: ${e.message}`);
      });
      ws.on('close', () => {
        for (const { reject: fail, what } of this.pending.values()) {
          fail(new Error(`${what}: connection closed`));
        }
        this.pending.clear();
        if (connected) {
          this.onClose?.();
        } else {
          reject(new Error('connection closed before DDP connected'));
        }
      });
    });
  }

  dispatch(frame) {
    switch (frame.msg) {
      case 'ping':
        this.sendFrame(frame.id === undefined ? { msg: 'pong' } : { msg: 'pong', id: frame.id });
        break;
      case 'result': {
        const waiter = this.takePending(frame.id);
        if (!waiter) break;
        if (frame.error) {
          waiter.reject(new DdpError(waiter.what, frame.error));
        } else {
          // `hasResult` matters: sendMessage reports failure as a result frame without `result`.
          waiter.resolve({ result: frame.result, hasResult: 'result' in frame });
        }
        break;
      }
      case 'ready':
        for (const id of frame.subs ?? []) {
          this.takePending(id)?.resolve();
        }
        break;
      case 'nosub': {
        const waiter = this.takePending(frame.id);
        waiter?.reject(new DdpError(waiter.what, frame.error ?? { reason: 'nosub' }));
        break;
      }
      case 'changed':
        this.onChanged?.(frame.collection, frame.fields ?? {});
        break;
      case 'error':
        this.log(`server reported a protocol error: ${frame.reason}`);
        break;
      default:
        // added/removed/updated and non-DDP frames carry nothing the OTR client needs.
        break;
    }
  }

  takePending(id) {
    const waiter = this.pending.get(id);
    this.pending.delete(id);
    return waiter;
  }

  sendFrame(frame) {
    const text = EJSON.stringify(frame);
    if (this.debug) {
      this.log(`-> ${text}`);
    }
    this.ws.send(text);
  }

  /** Call a method; resolves `{result, hasResult}` or rejects with a DdpError. */
  call(method, params) {
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what: `method ${method}` });
      this.sendFrame({ msg: 'method', method, id, params });
    });
  }

  /** Subscribe; resolves on `ready`, rejects on `nosub`. */
  subscribe(name, params) {
    const id = `sub-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what: `subscription ${name} ${params[0]}` });
      this.sendFrame({ msg: 'sub', id, name, params });
    });
  }

  close() {
    this.ws?.close();
  }

  log(line) {
    process.stderr.write(`stock-peer ddp: ${line}\n`);
  }
}
