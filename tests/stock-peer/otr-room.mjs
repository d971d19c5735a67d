// One DM room's OTR state machine, as the stock Rocket.Chat web client runs it (PROTOCOL.md
// sections 3, 4, 6 and 8; OTRRoom.ts + useOTRMessaging + the OTR contextual bar). Weaknesses are
// reproduced on purpose: signalling senders are not checked, `acknowledge` is honoured in any
// state while a key pair exists, and sends fall back to plaintext when not ESTABLISHED.

import {
  decryptObject,
  deriveSessionKey,
  encryptMessage,
  encryptText,
  exportPublicKeyField,
  generateKeyPair,
  importPublicKeyField,
  randomId,
} from './otr-crypto.mjs';

/** The stock states (value == name; never on the wire). */
export const State = Object.freeze({
  NOT_STARTED: 'NOT_STARTED',
  ESTABLISHING: 'ESTABLISHING',
  ESTABLISHED: 'ESTABLISHED',
  REQUESTED: 'REQUESTED',
  ERROR: 'ERROR',
  TIMEOUT: 'TIMEOUT',
  DECLINED: 'DECLINED',
});

/** Both stock timers (panel ESTABLISHING timeout, invitation prompt) are 10 s. */
const PROMPT_TIMEOUT_MS = 10_000;

/** The system message types the stock client posts through REST `chat.otr`. */
export const SYSTEM_TYPES = new Set([
  'user_joined_otr',
  'user_requested_otr_key_refresh',
  'user_key_refreshed_successfully',
]);

export class OtrRoom {
  /**
   * @param ctx shared client context: `{ myUid, ddp, rest(path, body), emit(obj), enqueue(fn),
   *            lookupUsername(uid), options }`
   */
  constructor(ctx, { rid, peerUid, peerUsername }) {
    this.ctx = ctx;
    this.rid = rid;
    this.peerUid = peerUid;
    this.peerUsername = peerUsername;
    this.state = State.NOT_STARTED;
    this.keyPair = null;
    this.publicKeyField = null;
    this.sessionKey = null;
    this.isFirstOTR = true;
    /** The handshake payload behind an open prompt (REQUESTED). */
    this.pendingHandshake = null;
    this.promptTimer = null;
    this.establishingTimer = null;
    /** Inner ids already shown, so a duplicated broadcast is reported once (clients upsert by _id). */
    this.shown = new Set();
    this.delivered = new Set();
  }

  emit(obj) {
    this.ctx.emit({ peer: this.peerUsername, rid: this.rid, ...obj });
  }

  setState(state) {
    this.state = state;
    // The panel's ESTABLISHING timer is a React effect keyed on the state: any change clears it.
    if (state !== State.ESTABLISHING) {
      clearTimeout(this.establishingTimer);
      this.establishingTimer = null;
    } else if (!this.establishingTimer) {
      this.establishingTimer = setTimeout(() => {
        this.ctx.enqueue(async () => {
          this.establishingTimer = null;
          if (this.state === State.ESTABLISHING) {
            this.setState(State.TIMEOUT);
          }
        });
      }, PROMPT_TIMEOUT_MS);
    }
    this.emit({ event: 'state', state });
  }

  publish(type, payload) {
    // sdk.publish is fire-and-forget; the server answers even when it drops the write.
    this.ctx.ddp
      .call('stream-notify-user', [`${this.peerUid}/otr`, type, payload])
      .catch((e) => this.ctx.emit({ event: 'error', message: `publish ${type}: ${e.message}` }));
  }

  deleteOldOTRMessages() {
    this.ctx.ddp
      .call('deleteOldOTRMessages', [this.rid])
      .catch((e) => this.ctx.emit({ event: 'error', message: `deleteOldOTRMessages: ${e.message}` }));
  }

  async systemMessage(type) {
    try {
      await this.ctx.rest('/api/v1/chat.otr', { roomId: this.rid, type });
    } catch (e) {
      this.ctx.emit({ event: 'error', message: `chat.otr ${type}: ${e.message}` });
    }
  }

  async generateKeyPair() {
    this.keyPair = await generateKeyPair();
    this.publicKeyField = await exportPublicKeyField(this.keyPair.publicKey);
    this.deleteOldOTRMessages();
  }

  async importPublicKey(field) {
    const peerKey = await importPublicKeyField(field);
    this.sessionKey = await deriveSessionKey(this.keyPair.privateKey, peerKey);
  }

  reset() {
    this.keyPair = null;
    this.publicKeyField = null;
    this.sessionKey = null;
    this.deleteOldOTRMessages();
  }

  closePrompt() {
    clearTimeout(this.promptTimer);
    this.promptTimer = null;
    this.pendingHandshake = null;
  }

  // ---- user actions -------------------------------------------------------------------------

  /** "Start OTR" (also the second half of "Refresh keys"). */
  async handshake(refresh) {
    this.setState(State.ESTABLISHING);
    await this.generateKeyPair();
    const payload = { roomId: this.rid, userId: this.ctx.myUid, publicKey: this.publicKeyField };
    if (refresh) {
      payload.refresh = true;
    }
    this.publish('handshake', payload);
    if (refresh) {
      await this.systemMessage('user_requested_otr_key_refresh');
      this.isFirstOTR = false;
    }
  }

  async start() {
    if ([State.ESTABLISHED, State.ESTABLISHING].includes(this.state)) {
      throw new Error(`start is not offered in state ${this.state}`);
    }
    await this.handshake(false);
  }

  async refresh() {
    if (this.state !== State.ESTABLISHED) {
      throw new Error(`refresh is only offered while ESTABLISHED (state ${this.state})`);
    }
    this.reset();
    await this.handshake(true);
  }

  async end() {
    if (this.state !== State.ESTABLISHED) {
      throw new Error(`end is only offered while ESTABLISHED (state ${this.state})`);
    }
    this.isFirstOTR = true;
    this.reset();
    this.setState(State.NOT_STARTED);
    this.publish('end', { roomId: this.rid, userId: this.ctx.myUid });
  }

  /** "Yes" on the prompt. */
  async accept() {
    if (this.state !== State.REQUESTED || !this.pendingHandshake) {
      throw new Error(`no invitation is open (state ${this.state})`);
    }
    const data = this.pendingHandshake;
    this.closePrompt();
    this.setState(State.ESTABLISHING);
    await this.establishAsResponder(data);
  }

  /** "No" (or closing the prompt). */
  async decline() {
    if (this.state !== State.REQUESTED) {
      throw new Error(`no invitation is open (state ${this.state})`);
    }
    this.closePrompt();
    this.reset();
    this.setState(State.DECLINED);
    this.publish('deny', { roomId: this.rid, userId: this.ctx.myUid });
  }

  async establishAsResponder(data) {
    try {
      await this.generateKeyPair();
      await this.importPublicKey(data.publicKey);
    } catch (e) {
      this.setState(State.ERROR);
      throw e;
    }
    // The stock client navigates to the room, then on the next tick declares ESTABLISHED and acks.
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.setState(State.ESTABLISHED);
    this.publish('acknowledge', {
      roomId: this.rid,
      userId: this.ctx.myUid,
      publicKey: this.publicKeyField,
    });
    if (data.refresh) {
      await this.systemMessage('user_key_refreshed_successfully');
    }
  }

  /** Send a chat message: encrypted when ESTABLISHED, otherwise the stock plaintext fallback. */
  async send(text) {
    const _id = randomId();
    const message = { _id, rid: this.rid, msg: text };
    let plaintext = true;
    if (this.state === State.ESTABLISHED && this.sessionKey) {
      const { msg } = await encryptMessage(this.sessionKey, { _id, text, userId: this.ctx.myUid });
      message.msg = msg;
      message.t = 'otr';
      plaintext = false;
    }
    const { hasResult } = await this.ctx.ddp.call('sendMessage', [message]);
    if (!hasResult) {
      throw new Error('sendMessage returned no message (the server refused it)');
    }
    this.emit({ event: 'sent', id: _id, plaintext });
  }

  // ---- signalling from the user stream ------------------------------------------------------

  async onSignal(type, data) {
    switch (type) {
      case 'handshake':
        await this.onHandshake(data);
        break;
      case 'acknowledge':
        await this.onAcknowledge(data);
        break;
      case 'deny':
        if (this.state === State.ESTABLISHING) {
          this.reset();
          this.setState(State.DECLINED);
        }
        break;
      case 'end':
        if (this.state === State.ESTABLISHED) {
          this.reset();
          this.setState(State.NOT_STARTED);
          this.emit({ event: 'ended_by_peer' });
        }
        break;
      default:
        break;
    }
  }

  async onHandshake(data) {
    // The only validation the stock client does: the claimed sender must resolve to a username.
    const username = await this.ctx.lookupUsername(data.userId);
    if (!username) {
      this.emit({ event: 'ignored_signal', type: 'handshake', reason: 'unknown sender' });
      return;
    }
    if (data.refresh && this.state === State.ESTABLISHED) {
      this.reset();
      this.emit({ event: 'key_refresh', from: username });
      await this.establishAsResponder(data);
      return;
    }
    if (this.state === State.REQUESTED) {
      return;
    }
    if (this.state === State.ESTABLISHED) {
      this.reset();
    }
    this.setState(State.REQUESTED);
    this.pendingHandshake = data;
    this.emit({ event: 'invitation', from: username, refresh: Boolean(data.refresh) });
    this.promptTimer = setTimeout(() => {
      this.ctx.enqueue(async () => {
        if (this.state === State.REQUESTED && this.pendingHandshake === data) {
          this.closePrompt();
          this.setState(State.TIMEOUT);
        }
      });
    }, PROMPT_TIMEOUT_MS);
    const { autoAccept, ignoreInvitations, acceptDelayMs } = this.ctx.options;
    if (autoAccept && !ignoreInvitations) {
      setTimeout(() => {
        this.ctx.enqueue(async () => {
          if (this.state === State.REQUESTED && this.pendingHandshake === data) {
            await this.accept();
          }
        });
      }, acceptDelayMs);
    }
  }

  async onAcknowledge(data) {
    if (!this.keyPair) {
      // Stock: importPublicKey throws without a key pair and the catch sets ERROR.
      this.setState(State.ERROR);
      this.emit({ event: 'error', message: 'acknowledge without a key pair' });
      return;
    }
    try {
      await this.importPublicKey(data.publicKey);
    } catch (e) {
      this.setState(State.ERROR);
      this.emit({ event: 'error', message: `acknowledge: ${e.message}` });
      return;
    }
    this.setState(State.ESTABLISHED);
    if (this.isFirstOTR) {
      await this.systemMessage('user_joined_otr');
    }
    this.isFirstOTR = false;
  }

  // ---- the room message stream --------------------------------------------------------------

  async onRoomMessage(message) {
    if (SYSTEM_TYPES.has(message.t)) {
      this.emit({ event: 'system_message', type: message.t, from: message.u?.username ?? null });
      return;
    }
    if (message.t !== 'otr' && message.t !== 'otr-ack') {
      if (!message.t && message.u?._id !== this.ctx.myUid) {
        this.emit({ event: 'message', text: message.msg, id: message._id, ts: tsMillis(message.ts), plaintext: true });
      }
      return;
    }
    if (message.notification) {
      return;
    }
    if (this.state !== State.ESTABLISHED || !this.sessionKey) {
      this.emit({ event: 'otr_message_ignored', id: message._id, reason: `state ${this.state}` });
      return;
    }
    let inner;
    try {
      inner = await decryptObject(this.sessionKey, message.msg);
    } catch (e) {
      this.failDecrypt(message, e);
      return;
    }
    if (!inner || typeof inner !== 'object') {
      this.failDecrypt(message, new Error('inner plaintext is not an object'));
      return;
    }
    if (inner.ts) {
      message.ts = inner.ts;
    }
    const ackField = message.otrAck ?? message.otr?.ack;
    if (ackField) {
      let ackInner;
      try {
        ackInner = await decryptObject(this.sessionKey, ackField);
      } catch (e) {
        this.failDecrypt(message, e);
        return;
      }
      if (ackInner?.text === inner.ack && inner.userId === this.ctx.myUid && !this.delivered.has(inner._id)) {
        this.delivered.add(inner._id);
        this.emit({ event: 'delivered', id: inner._id });
      }
      return;
    }
    if (inner.userId !== this.ctx.myUid) {
      // Echo the received message as-is, only ts replaced by the inner Date (an EJSON Date).
      const ack = await encryptText(this.sessionKey, String(inner.ack));
      this.ctx.ddp
        .call('updateOTRAck', [{ message, ack }])
        .catch((e) => this.ctx.emit({ event: 'error', message: `updateOTRAck: ${e.message}` }));
      if (!this.shown.has(inner._id)) {
        this.shown.add(inner._id);
        this.emit({
          event: 'message',
          text: inner.text,
          id: inner._id,
          ts: tsMillis(inner.ts),
          plaintext: false,
          user_id: inner.userId,
          outer_user_id: message.u?._id ?? null,
        });
        if (this.ctx.options.autoEcho) {
          this.ctx.enqueue(() => this.send(`echo: ${inner.text}`));
        }
      }
    }
  }

  failDecrypt(message, e) {
    this.setState(State.ERROR);
    this.emit({ event: 'decrypt_failed', id: message._id, message: e.message });
  }
}

function tsMillis(ts) {
  if (ts instanceof Date) {
    return ts.getTime();
  }
  return typeof ts === 'number' ? ts : null;
}

