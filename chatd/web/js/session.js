// The protocol logic: logging in and staying logged in, the inbox cursor, the
// outbox, and every request the UI can make. The store holds the results.
//
// Delivery contract (docs/protocol.md §6):
//  - every chat we send carries a random `cmid` and stays in the outbox
//    (kept in sessionStorage) until its CHAT_ACK; after a reconnect or a page
//    reload the outbox is sent again with the same cmid, and the server's
//    dedup (CHAT_ACK dup:true) makes each message appear once;
//  - pushes 5/9 carry the inbox `seq`; we drop any seq we have already seen
//    and acknowledge the highest contiguous one with DELIVERED (14), batched;
//  - after every login the server replays the inbox from our acked cursor as
//    ordinary pushes, so a replay needs no special path.

import { Wire, MSG, RequestError } from './wire.js';
import { keyOf, keyOfChat, messageOf } from './store.js';

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const DELIVERED_BATCH_MS = 200;
const READ_DELAY_MS = 250;
const HISTORY_PAGE = 50;
const MAX_MESSAGE_BYTES = 61_440;

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at 15 s, ±25 %. */
export function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 10));
  const jittered = base * (0.75 + Math.random() * 0.5);
  return Math.round(Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, jittered)));
}

/** A client message id. randomUUID needs a secure context; plain http on a
 * LAN address is not one, so fall back to 128 random bits in hex. */
export function newCmid() {
  if (globalThis.crypto?.randomUUID) {
    try {
      return crypto.randomUUID();
    } catch {
      // not a secure context
    }
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export const messageBytes = (text) => new TextEncoder().encode(text).length;

const offline = () => new RequestError('closed', 'You are offline. Try again once connected.', { closed: true });

export class Session {
  /**
   * @param store  the Store
   * @param opts.url         WebSocket address (default: same host, /ws)
   * @param opts.isViewing   (key) => the user is looking at that conversation
   */
  constructor(store, { url, isViewing } = {}) {
    this.store = store;
    this.url = url;
    this.isViewing = isViewing || ((key) => store.openKey === key);
    this.wire = null;
    this.opening = null; // promise of this.wire being open
    this.loggedIn = false; // this.wire carries a logged-in session
    this.autoReconnect = false; // we have a user and want to stay connected
    this.attempt = 0;
    this.retryTimer = null;
    // Inbox cursor: everything up to `contig` was received (no gaps); `above`
    // holds seqs seen beyond a gap; `acked` is what the server has been told.
    this.seqUser = null;
    this.seq = { contig: 0, above: new Set(), acked: 0 };
    this.deliverTimer = null;
    this.readTimers = new Map();
    this.inflight = new Set(); // cmids sent on the current socket, not answered yet
    this.refreshTimers = {};
    globalThis.addEventListener?.('online', () => {
      if (this.autoReconnect) this.reconnectNow();
    });
  }

  // ---------------------------------------------------------------- sockets

  /** Called once at page load: resume the stored session if there is one. */
  start() {
    if (!this.store.token) return false;
    this.autoReconnect = true;
    this.connect().catch(() => {});
    return true;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.wire) return this.opening;
    const wire = new Wire(this.url);
    this.wire = wire;
    this.loggedIn = false;
    this.store.setConn('connecting');
    wire.addEventListener('frame', (e) => this.onFrame(wire, e.detail));
    wire.addEventListener('close', () => this.onClose(wire));
    this.opening = wire.open().then(() => {
      if (this.wire !== wire) throw offline();
      if (this.autoReconnect && this.store.token) this.resume(wire);
      else this.store.setConn('offline'); // open, but nobody logged in yet
      return wire;
    });
    return this.opening;
  }

  /** An open socket for LOGIN / REG from the forms. */
  async ensureWire() {
    if (this.wire && this.wire.isOpen) return this.wire;
    try {
      return await (this.wire ? this.opening : this.connect());
    } catch {
      throw new RequestError('closed', 'Cannot reach the server. Check your connection and try again.', { closed: true });
    }
  }

  onClose(wire) {
    if (wire !== this.wire) return;
    this.wire = null;
    this.opening = null;
    this.loggedIn = false;
    clearTimeout(this.deliverTimer);
    this.deliverTimer = null;
    if (this.autoReconnect && this.store.token) this.scheduleReconnect();
    else this.store.setConn('offline');
  }

  scheduleReconnect() {
    clearTimeout(this.retryTimer);
    const delay = backoffDelay(this.attempt++);
    this.store.setConn('reconnecting', Date.now() + delay);
    this.retryTimer = setTimeout(() => this.connect().catch(() => {}), delay);
  }

  /** "Reconnect now" / "Use here" / the browser came back online. */
  reconnectNow() {
    if (!this.store.token) return;
    this.autoReconnect = true;
    if (this.wire) return;
    this.attempt = 0;
    this.store.setNotice(null);
    this.connect().catch(() => {});
  }

  /** A request that needs a logged-in session. */
  req(frame, timeoutMs) {
    if (!this.loggedIn || !this.wire) return Promise.reject(offline());
    return this.wire.request(frame, timeoutMs);
  }

  // ------------------------------------------------------------ logging in

  async resume(wire) {
    try {
      const ack = await wire.request({ msgid: MSG.RESUME, token: this.store.token });
      this.onLoggedIn(wire, ack);
    } catch (e) {
      if (e.closed || this.wire !== wire) return; // onClose plans the retry
      if (e.errno === 17) {
        // Expired or revoked: only the password helps now.
        this.store.token = null;
        this.autoReconnect = false;
        this.store.reset();
        this.store.setConn('offline');
        this.store.emit('auth', { message: 'Your session has ended. Please log in again.' });
      } else {
        // 30 (unavailable), a timeout: try again later. (The login guard
        // never refuses a valid token, so 18 is not expected here.)
        wire.close(4001, 'resume failed');
      }
    }
  }

  async login(id, password) {
    const wire = await this.ensureWire();
    this.store.setConn('connecting');
    try {
      const ack = await wire.request({ msgid: MSG.LOGIN, id, password, proto: 2 });
      this.onLoggedIn(wire, ack);
    } catch (e) {
      if (!this.loggedIn) this.store.setConn('offline');
      throw e;
    }
  }

  /** Returns the new user id. Registering does not log in. */
  async register(name, password) {
    const wire = await this.ensureWire();
    const ack = await wire.request({ msgid: MSG.REG, name, password, proto: 2 });
    return ack.id;
  }

  onLoggedIn(wire, ack) {
    if (this.wire !== wire) return;
    const store = this.store;
    if (this.seqUser !== ack.id) {
      this.seqUser = ack.id;
      this.seq = { contig: ack.cursor || 0, above: new Set(), acked: ack.cursor || 0 };
    } else {
      // Same user again: what we saw beyond the server's cursor stays seen,
      // and the replayed pushes below our own mark are dropped by seq.
      this.seq.acked = ack.cursor || 0;
      this.advanceContig(ack.cursor || 0);
    }
    if (!store.me || store.me.id !== ack.id) store.reset();
    store.me = { id: ack.id, name: ack.name };
    if (ack.resume?.token) store.token = ack.resume.token;
    this.loggedIn = true;
    this.autoReconnect = true;
    this.attempt = 0;
    store.setDirectory(ack.friends || [], ack.groups || []);
    // Anything may have happened while we were away: re-read on next open.
    for (const c of store.convs.values()) if (c.history === 'fresh') c.history = 'stale';
    store.setNotice(null);
    store.setConn('online');
    store.emit('auth', { loggedIn: true });
    this.resendOutbox();
    this.loadConversations(wire);
    if (store.openKey) this.openConversation(store.openKey);
    if (this.seq.contig > this.seq.acked) this.scheduleDelivered();
  }

  async logout(message = 'You have logged out.') {
    const uid = this.store.me?.id;
    if (this.loggedIn) {
      // Revokes the resume token on the server, everywhere.
      await this.req({ msgid: MSG.LOGINOUT }, 5_000).catch(() => {});
    }
    this.autoReconnect = false;
    this.store.token = null;
    this.store.outbox = this.store.outbox.filter((e) => e.uid !== uid);
    this.store.saveOutbox();
    this.seqUser = null;
    const wire = this.wire;
    this.wire = null;
    this.loggedIn = false;
    wire?.close(1000, 'logout');
    clearTimeout(this.retryTimer);
    this.store.reset();
    this.store.setConn('offline');
    this.store.setNotice(null);
    this.store.emit('auth', { message });
  }

  async changePassword(oldPassword, newPassword) {
    const ack = await this.req({ msgid: MSG.CHANGE_PASSWORD, old: oldPassword, new: newPassword });
    if (ack.resume?.token) this.store.token = ack.resume.token;
  }

  // ---------------------------------------------------------- server frames

  onFrame(wire, f) {
    if (wire !== this.wire) return;
    switch (f.msgid) {
      case MSG.ONE_CHAT:
      case MSG.GROUP_CHAT:
        if (this.loggedIn) this.onChat(f);
        break;
      case MSG.PRESENCE:
        this.onPresence(f);
        break;
      case MSG.KICKED:
        this.onKicked(f);
        break;
      case MSG.ERROR:
        // Not tied to a request. An idle anonymous socket being closed (42)
        // is not worth a word; anything else is shown.
        if (!this.loggedIn && f.errno === 42) break;
        this.store.setNotice(f.errmsg || `Server error ${f.errno}`, 'error');
        break;
      default:
        break; // a late reply to a request that already timed out
    }
  }

  onChat(f) {
    if (typeof f.seq === 'number') {
      if (f.seq <= this.seq.contig || this.seq.above.has(f.seq)) return; // seen already
      this.seq.above.add(f.seq);
      this.advanceContig(this.seq.contig);
      this.scheduleDelivered();
    }
    const me = this.store.me.id;
    const isGroup = f.groupid !== undefined && f.groupid !== null;
    const id = isGroup ? f.groupid : f.id === me ? f.toid : f.id;
    const name = isGroup ? this.store.groups.get(id)?.name : f.id === me ? undefined : f.name;
    if (isGroup && !this.store.groups.has(id)) this.refreshSoon('groups'); // joined elsewhere
    this.store.ensureConv(isGroup ? 'group' : 'user', id, this.store.friends.get(id)?.name || name);
    const key = keyOfChat(f, me);
    const viewing = this.isViewing(key);
    if (this.store.addMessage(key, messageOf(f), { viewing }) && viewing) this.scheduleRead(key);
  }

  advanceContig(to) {
    const s = this.seq;
    if (to > s.contig) s.contig = to;
    for (const q of s.above) if (q <= s.contig) s.above.delete(q);
    while (s.above.has(s.contig + 1)) s.above.delete(++s.contig);
  }

  scheduleDelivered() {
    if (this.deliverTimer) return;
    this.deliverTimer = setTimeout(() => {
      this.deliverTimer = null;
      this.flushDelivered();
    }, DELIVERED_BATCH_MS);
  }

  /** Tell the server how far the inbox has reached us (no rid: no reply). */
  flushDelivered() {
    if (!this.loggedIn || this.seq.contig <= this.seq.acked) return;
    if (this.wire.send({ msgid: MSG.DELIVERED, seq: this.seq.contig })) this.seq.acked = this.seq.contig;
  }

  onPresence(f) {
    if (!this.store.setPresence(f.id, f.state, f.name)) {
      // A presence event for someone we do not list: they just befriended us.
      this.refreshSoon('friends');
    }
    for (const g of this.store.groups.values()) {
      const m = g.members.find((u) => u.id === f.id);
      if (m) {
        m.state = f.state;
        this.store.emit('members', { id: g.id });
      }
    }
  }

  onKicked(f) {
    if (f.errno === 40) {
      // Another tab or device took over. Coming back automatically would
      // kick that one in turn, forever; let the person decide.
      this.autoReconnect = false;
      this.store.setNotice('You logged in somewhere else, so this window was disconnected.', 'warn', {
        label: 'Use here',
        run: () => this.reconnectNow(),
      });
    } else if (f.errno === 41) {
      this.store.setNotice('The server is restarting. Reconnecting…', 'info');
    }
    // 41, 42: the close that follows plans a reconnect.
  }

  refreshSoon(what) {
    if (this.refreshTimers[what]) return;
    this.refreshTimers[what] = setTimeout(() => {
      this.refreshTimers[what] = null;
      (what === 'friends' ? this.refreshFriends() : this.refreshGroups()).catch(() => {});
    }, 300);
  }

  // ---------------------------------------------------------- conversations

  async loadConversations(wire) {
    let before;
    try {
      for (let page = 0; page < 25; page++) {
        const frame = { msgid: MSG.CONVERSATIONS, limit: 200 };
        if (before !== undefined) frame.before = before;
        const ack = await wire.request(frame);
        if (this.wire !== wire) return;
        const list = ack.conversations || [];
        this.store.applyConversations(list);
        if (!ack.more || !list.length) break;
        before = list[list.length - 1].last?.mid;
        if (before === undefined) break;
      }
      const open = this.store.openKey;
      if (open && this.isViewing(open)) this.scheduleRead(open);
    } catch (e) {
      if (!e.closed) this.store.setNotice(`Could not load your conversations: ${e.message}`, 'error');
    }
  }

  openConversation(key) {
    const c = this.store.conv(key);
    if (!c) return;
    this.store.setOpen(key);
    if (c.history !== 'fresh') this.loadHistory(key, false);
    if (c.kind === 'group') this.loadMembers(c.id).catch(() => {});
    if (this.isViewing(key)) this.scheduleRead(key);
  }

  closeConversation() {
    this.store.setOpen(null);
  }

  async loadHistory(key, older) {
    const c = this.store.conv(key);
    if (!c || !this.loggedIn) return;
    const wire = this.wire;
    const frame = { msgid: MSG.HISTORY, limit: HISTORY_PAGE };
    frame[c.kind === 'group' ? 'groupid' : 'toid'] = c.id;
    if (older) {
      if (c.loadingOlder || !c.more || !c.messages.size) return;
      c.loadingOlder = true;
      let min = Infinity;
      for (const mid of c.messages.keys()) min = Math.min(min, mid);
      frame.before = min;
    } else {
      if (c.history === 'loading') return;
      c.history = 'loading';
    }
    this.store.emit('conv', { key });
    try {
      const ack = await wire.request(frame);
      this.store.mergeHistory(key, ack.msgs || [], !!ack.more, older);
      if (this.isViewing(key)) this.scheduleRead(key);
    } catch (e) {
      if (!older) c.history = 'stale';
      if (!e.closed) c.error = `Could not load messages: ${e.message}`;
      this.store.emit('conv', { key });
    } finally {
      if (older) c.loadingOlder = false;
    }
  }

  scheduleRead(key) {
    clearTimeout(this.readTimers.get(key));
    this.readTimers.set(key, setTimeout(() => {
      this.readTimers.delete(key);
      this.markRead(key);
    }, READ_DELAY_MS));
  }

  /** READ (33) with the newest mid, and zero the badge right away. */
  markRead(key) {
    const c = this.store.conv(key);
    if (!c) return;
    if (c.unread) {
      c.unread = 0;
      this.store.emit('list');
    }
    const mid = c.lastMid;
    if (!mid || mid <= c.read || mid <= (c.readSent || 0) || !this.loggedIn) return;
    c.readSent = mid;
    const frame = { msgid: MSG.READ, mid };
    frame[c.kind === 'group' ? 'groupid' : 'toid'] = c.id;
    this.req(frame)
      .then((ack) => {
        c.read = Math.max(c.read, ack.mid ?? mid);
      })
      .catch((e) => {
        c.readSent = 0;
        if (!e.closed) {
          c.error = `Could not mark as read: ${e.message}`;
          this.store.emit('conv', { key });
        }
      });
  }

  // ----------------------------------------------------------------- outbox

  /** Queue a message; it is sent now if we are online, else after login. */
  send(key, text) {
    const c = this.store.conv(key);
    const me = this.store.me;
    if (!c || !me) return null;
    if (!text.trim()) return null;
    if (messageBytes(text) > MAX_MESSAGE_BYTES) {
      throw new RequestError(21, `This message is too long (at most ${MAX_MESSAGE_BYTES} bytes).`);
    }
    const entry = {
      cmid: newCmid(), uid: me.id, key, kind: c.kind, id: c.id,
      text, t: Date.now(), state: 'pending', err: '',
    };
    this.store.addOutbox(entry);
    this.transmit(entry.cmid);
    return entry.cmid;
  }

  transmit(cmid) {
    const entry = this.store.outbox.find((e) => e.cmid === cmid);
    if (!entry || entry.state !== 'pending' || !this.loggedIn || this.inflight.has(cmid)) return;
    if (entry.uid !== this.store.me?.id) return;
    const wire = this.wire;
    const frame = entry.kind === 'group'
      ? { msgid: MSG.GROUP_CHAT, groupid: entry.id, msg: entry.text, cmid }
      : { msgid: MSG.ONE_CHAT, toid: entry.id, msg: entry.text, cmid };
    this.inflight.add(cmid);
    wire.request(frame, 30_000)
      .then((ack) => this.store.ackOutbox(cmid, ack))
      .catch((e) => {
        if (e.closed) return; // still pending: sent again after the next login
        if (e.timeout || e.errno === 32 || e.errno === 30) {
          // Not stored (32, 30) or unknown (timeout): the same cmid is safe.
          setTimeout(() => this.transmit(cmid), 1_500);
          return;
        }
        this.store.updateOutbox(cmid, { state: 'failed', err: e.message });
      })
      .finally(() => this.inflight.delete(cmid));
  }

  resendOutbox() {
    const uid = this.store.me?.id;
    const mine = this.store.outbox.filter((e) => e.uid === uid && e.state === 'pending');
    mine.sort((a, b) => a.t - b.t);
    for (const e of mine) {
      // A message queued in a chat we no longer list (a group left elsewhere)
      // still goes out; the server says if it cannot.
      this.store.ensureConv(e.kind, e.id);
      this.transmit(e.cmid);
    }
  }

  retry(cmid) {
    this.store.updateOutbox(cmid, { state: 'pending', err: '' });
    this.transmit(cmid);
  }

  discard(cmid) {
    this.store.removeOutbox(cmid);
  }

  // ---------------------------------------------------------- people, groups

  async findUsers(prefix) {
    const ack = await this.req({ msgid: MSG.FIND_USER, name: prefix, prefix: true, limit: 10 });
    return ack.users || [];
  }

  async addFriend(user) {
    await this.req({ msgid: MSG.ADD_FRIEND, friendid: user.id });
    this.store.friends.set(user.id, { id: user.id, name: user.name, state: user.state || 'offline' });
    this.store.ensureConv('user', user.id, user.name);
    this.store.emit('list');
  }

  async removeFriend(id) {
    await this.req({ msgid: MSG.REMOVE_FRIEND, friendid: id });
    this.store.friends.delete(id);
    this.store.pruneConvs();
    this.store.emit('list');
    this.store.emit('open');
  }

  /** Open (creating if needed) a one-to-one chat, friend or not. */
  openUser(user) {
    this.store.ensureConv('user', user.id, user.name);
    this.store.emit('list');
    this.openConversation(keyOf('user', user.id));
  }

  async refreshFriends() {
    const ack = await this.req({ msgid: MSG.LIST_FRIENDS });
    this.store.setFriends(ack.friends || []);
  }

  async refreshGroups() {
    const ack = await this.req({ msgid: MSG.LIST_GROUPS });
    this.store.setGroups(ack.groups || []);
  }

  async createGroup(name, desc = '') {
    const ack = await this.req({ msgid: MSG.CREATE_GROUP, groupname: name, groupdesc: desc });
    await this.refreshGroups().catch(() => {
      this.store.groups.set(ack.groupid, { id: ack.groupid, name, desc, members: [] });
      this.store.ensureConv('group', ack.groupid, name);
    });
    return ack.groupid;
  }

  async joinGroup(id) {
    const ack = await this.req({ msgid: MSG.ADD_GROUP, groupid: id });
    await this.refreshGroups();
    return ack.groupid ?? id;
  }

  async leaveGroup(id) {
    await this.req({ msgid: MSG.LEAVE_GROUP, groupid: id });
    this.store.groups.delete(id);
    this.store.pruneConvs();
    this.store.emit('list');
  }

  async loadMembers(id) {
    const ack = await this.req({ msgid: MSG.LIST_MEMBERS, groupid: id });
    this.store.setMembers(id, ack.users || []);
  }
}
