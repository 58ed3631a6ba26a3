// The WebSocket transport: one JSON frame per text message, native dialect.
// It knows about request ids, the heartbeat and nothing else; logging in,
// retrying and the meaning of pushes live in session.js.

export const MSG = Object.freeze({
  LOGIN: 1, LOGIN_ACK: 2, REG: 3, REG_ACK: 4, ONE_CHAT: 5, ADD_FRIEND: 6,
  CREATE_GROUP: 7, ADD_GROUP: 8, GROUP_CHAT: 9, LOGINOUT: 10, ERROR: 11,
  ACK: 12, CHAT_ACK: 13, DELIVERED: 14, HISTORY: 17, HISTORY_ACK: 18,
  LIST_FRIENDS: 19, FRIENDS_ACK: 20, LIST_GROUPS: 21, GROUPS_ACK: 22,
  LIST_MEMBERS: 23, MEMBERS_ACK: 24, REMOVE_FRIEND: 25, LEAVE_GROUP: 26,
  PING: 27, PONG: 28, KICKED: 29, RESUME: 30, CHANGE_PASSWORD: 31,
  PRESENCE: 32, READ: 33, CONVERSATIONS: 34, CONVERSATIONS_ACK: 35,
  FIND_USER: 36, USERS_ACK: 37,
});

/** A refusal from the server (ERROR 11), or a local failure such as a drop. */
export class RequestError extends Error {
  constructor(errno, message, { closed = false, timeout = false } = {}) {
    super(message);
    this.errno = errno;
    this.closed = closed; // the socket went away: the outcome is unknown
    this.timeout = timeout;
  }
}

export function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws`;
}

// If nothing has arrived for this long we ask the server for a PONG, and give
// up on the socket if that does not come back: a half-open TCP connection
// (laptop lid closed, Wi-Fi switched) otherwise looks alive for minutes.
const IDLE_PROBE_MS = 25_000;
const PROBE_TIMEOUT_MS = 10_000;

/**
 * One socket's life. Events: `frame` (detail: a frame that is not a reply to
 * one of our requests) and `close` (detail: {code, reason}). A Wire is never
 * reopened; session.js makes a new one for every attempt.
 */
export class Wire extends EventTarget {
  constructor(url = defaultUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.nextRid = 1;
    this.pending = new Map(); // rid -> {resolve, reject, timer}
    this.lastRx = Date.now();
    this.probe = null;
    this.closed = false;
  }

  /** Resolves once the socket is open; rejects if it closes first. */
  open() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        this.closed = true;
        reject(e);
        queueMicrotask(() => this.dispatchEvent(new CustomEvent('close', { detail: { code: 0, reason: String(e) } })));
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        this.lastRx = Date.now();
        this.probe = setInterval(() => this.checkIdle(), 5_000);
        resolve();
      };
      ws.onmessage = (ev) => this.onMessage(ev.data);
      ws.onclose = (ev) => {
        reject(new RequestError('closed', 'connection closed', { closed: true }));
        this.finish(ev.code, ev.reason);
      };
      // An error is always followed by close; nothing to do here.
      ws.onerror = () => {};
    });
  }

  get isOpen() {
    return !this.closed && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Fire and forget. Returns false when the socket is not open. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Send with a fresh `rid` and resolve with the reply that echoes it. An
   * ERROR reply rejects with RequestError(errno, errmsg); so does a closed
   * socket (errno 'closed') or a timeout.
   */
  request(frame, timeoutMs = 20_000) {
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...frame, rid })) {
        reject(new RequestError('closed', 'not connected', { closed: true }));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new RequestError('timeout', 'the server did not answer in time', { timeout: true }));
      }, timeoutMs);
      this.pending.set(rid, { resolve, reject, timer });
    });
  }

  close(code = 1000, reason = '') {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(code, reason);
    // Do not wait for the close handshake: the session has already moved on.
    this.finish(code, reason);
  }

  onMessage(data) {
    this.lastRx = Date.now();
    if (typeof data !== 'string') return; // the server only sends text
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    if (f.msgid === MSG.PING && f.rid === undefined) {
      this.send({ msgid: MSG.PONG });
      return;
    }
    if (f.rid !== undefined && this.pending.has(f.rid)) {
      const p = this.pending.get(f.rid);
      this.pending.delete(f.rid);
      clearTimeout(p.timer);
      if (f.msgid === MSG.ERROR || (f.errno !== undefined && f.errno !== 0)) {
        p.reject(new RequestError(f.errno, f.errmsg || `error ${f.errno}`));
      } else {
        p.resolve(f);
      }
      return;
    }
    this.dispatchEvent(new CustomEvent('frame', { detail: f }));
  }

  checkIdle() {
    if (!this.isOpen || Date.now() - this.lastRx < IDLE_PROBE_MS || this.probing) return;
    this.probing = true;
    this.request({ msgid: MSG.PING }, PROBE_TIMEOUT_MS)
      .catch((e) => {
        if (e.timeout) this.close(4000, 'no answer to ping');
      })
      .finally(() => {
        this.probing = false;
      });
  }

  finish(code, reason) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probe);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RequestError('closed', 'connection lost', { closed: true }));
    }
    this.pending.clear();
    if (this.ws) {
      this.ws.onmessage = null;
      this.ws.onclose = null;
    }
    this.dispatchEvent(new CustomEvent('close', { detail: { code, reason } }));
  }
}
