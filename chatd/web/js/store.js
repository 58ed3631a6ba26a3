// Client state: who I am, friends, groups, conversations with their messages,
// and the outbox of messages not yet acknowledged. Views read it and listen
// for topics; session.js is the only writer apart from the UI's "open".
//
// Topics (events dispatched on the store):
//   conn     connection state or retry time changed
//   auth     logged in / logged out (view switch)
//   list     anything the sidebar shows (order, names, unread, presence)
//   conv     messages of one conversation changed (detail: {key, older})
//   open     the open conversation changed
//   members  a group's member list changed (detail: {id})
//   notice   the banner text changed

const TOKEN_KEY = 'chatd.token';
const OUTBOX_KEY = 'chatd.outbox';

export const keyOf = (kind, id) => `${kind}:${id}`;

/** The conversation a chat frame belongs to, seen from user `meId`. */
export function keyOfChat(f, meId) {
  if (f.groupid !== undefined && f.groupid !== null) return keyOf('group', f.groupid);
  return keyOf('user', f.id === meId ? f.toid : f.id);
}

/** The message shape the views use, from a native chat object (5/9). */
export function messageOf(f) {
  return { mid: f.mid, ts: f.ts, from: f.id, fromName: f.name, text: f.msg };
}

function readJson(storage, key, fallback) {
  try {
    const v = storage.getItem(key);
    return v ? JSON.parse(v) : fallback;
  } catch {
    return fallback;
  }
}

export class Store extends EventTarget {
  constructor(storage = globalThis.sessionStorage) {
    super();
    this.storage = storage;
    this.conn = 'offline'; // offline | connecting | online | reconnecting
    this.retryAt = 0; // when state is reconnecting: the planned time
    this.notice = null; // {text, kind, action?: {label, run}}
    this.outbox = readJson(storage, OUTBOX_KEY, []).filter((e) => e && e.cmid && e.uid);
    this.reset();
  }

  /** Forget everything that belongs to a logged-in user (not the outbox). */
  reset() {
    this.me = null;
    this.friends = new Map(); // id -> {id, name, state}
    this.groups = new Map(); // id -> {id, name, desc, members: [{id,name,state,role}]}
    this.convs = new Map(); // key -> conversation
    this.openKey = null;
  }

  emit(topic, detail = {}) {
    this.dispatchEvent(new CustomEvent(topic, { detail }));
  }

  on(topic, fn) {
    this.addEventListener(topic, (e) => fn(e.detail));
  }

  // ---- persistence: the resume token (never the password) and the outbox

  get token() {
    return this.storage.getItem(TOKEN_KEY);
  }

  set token(t) {
    if (t) this.storage.setItem(TOKEN_KEY, t);
    else this.storage.removeItem(TOKEN_KEY);
  }

  saveOutbox() {
    try {
      this.storage.setItem(OUTBOX_KEY, JSON.stringify(this.outbox));
    } catch {
      // Storage full: the messages are still kept in memory for this page.
    }
  }

  // ---- connection and banner

  setConn(state, retryAt = 0) {
    this.conn = state;
    this.retryAt = retryAt;
    this.emit('conn');
  }

  setNotice(text, kind = 'info', action = null) {
    this.notice = text ? { text, kind, action } : null;
    this.emit('notice');
  }

  // ---- friends, groups, conversations

  conv(key) {
    return this.convs.get(key);
  }

  ensureConv(kind, id, name) {
    const key = keyOf(kind, id);
    let c = this.convs.get(key);
    if (!c) {
      c = {
        key, kind, id,
        name: name || (kind === 'group' ? `Group ${id}` : `User ${id}`),
        lastMid: 0, lastTs: 0, lastText: '', lastFrom: 0,
        unread: 0,
        read: 0, // the server's read position, as far as we know it
        countedUpTo: 0, // newest mid already reflected in `unread`
        messages: new Map(), // mid -> message
        more: true, // older history exists (until a page says otherwise)
        history: 'none', // none | loading | fresh | stale
        loadingOlder: false,
        error: '',
      };
      this.convs.set(key, c);
    } else if (name && c.name !== name) {
      c.name = name;
    }
    return c;
  }

  /** Both lists at once (LOGIN_ACK), so neither prunes the other's chats. */
  setDirectory(friends, groups) {
    this.friends = new Map(friends.map((f) => [f.id, { id: f.id, name: f.name, state: f.state }]));
    this.setGroups(groups); // ensures friends' chats too, prunes, emits
    for (const f of this.friends.values()) this.ensureConv('user', f.id, f.name);
    this.emit('list');
  }

  /** Friends and groups as LOGIN_ACK / LIST_FRIENDS / LIST_GROUPS give them. */
  setFriends(list) {
    this.friends = new Map(list.map((f) => [f.id, { id: f.id, name: f.name, state: f.state }]));
    for (const f of this.friends.values()) this.ensureConv('user', f.id, f.name);
    this.pruneConvs();
    this.emit('list');
  }

  setGroups(list) {
    this.groups = new Map(
      list.map((g) => [g.id, { id: g.id, name: g.groupname, desc: g.groupdesc || '', members: g.users || [] }]),
    );
    for (const g of this.groups.values()) this.ensureConv('group', g.id, g.name);
    this.pruneConvs();
    this.emit('list');
  }

  /** Drop groups we left and silent ex-friends; keep chats that have messages. */
  pruneConvs() {
    for (const [key, c] of this.convs) {
      const gone =
        c.kind === 'group'
          ? !this.groups.has(c.id)
          : !this.friends.has(c.id) && !c.lastMid && c.id !== this.me?.id && key !== this.openKey;
      if (gone) {
        this.convs.delete(key);
        if (key === this.openKey) this.setOpen(null);
      }
    }
  }

  setPresence(id, state, name) {
    const f = this.friends.get(id);
    if (!f) return false;
    f.state = state;
    if (name) f.name = name;
    this.emit('list');
    return true;
  }

  setMembers(groupid, users) {
    const g = this.groups.get(groupid);
    if (g) g.members = users;
    this.emit('members', { id: groupid });
  }

  setOpen(key) {
    if (this.openKey === key) return;
    this.openKey = key;
    this.emit('open');
    this.emit('list');
  }

  /**
   * Merge CONVERSATIONS_ACK entries. The server's `unread` already counts
   * every stored message, including pushes that reached us before this reply;
   * only messages newer than the server's `last` are added on top.
   */
  applyConversations(entries) {
    const meId = this.me?.id;
    for (const e of entries) {
      const kind = e.groupid !== undefined ? 'group' : 'user';
      const id = kind === 'group' ? e.groupid : e.toid;
      const c = this.ensureConv(kind, id, e.name);
      const last = e.last;
      if (last && last.mid > c.lastMid) this.setLast(c, messageOf(last));
      const serverLast = last ? last.mid : 0;
      c.read = Math.max(c.read, e.read || 0);
      let extra = 0;
      for (const m of c.messages.values()) if (m.mid > serverLast && m.mid > c.read && m.from !== meId) extra++;
      c.unread = (e.unread || 0) + extra;
      c.countedUpTo = Math.max(serverLast, c.lastMid);
    }
    this.emit('list');
  }

  setLast(c, m) {
    c.lastMid = m.mid;
    c.lastTs = m.ts;
    c.lastText = m.text;
    c.lastFrom = m.from;
  }

  /**
   * One message for a conversation (a push, or our own acked send). Returns
   * false when its mid is already known. `viewing`: the user is looking at
   * this conversation right now, so it does not count as unread.
   */
  addMessage(key, m, { viewing = false } = {}) {
    const c = this.convs.get(key);
    if (!c || c.messages.has(m.mid)) return false;
    c.messages.set(m.mid, m);
    if (m.mid > c.lastMid) this.setLast(c, m);
    if (m.from !== this.me?.id && !viewing && m.mid > c.countedUpTo && m.mid > c.read) c.unread++;
    c.countedUpTo = Math.max(c.countedUpTo, m.mid);
    this.emit('conv', { key });
    this.emit('list');
    return true;
  }

  /** A HISTORY_ACK page (newest first). `older`: it was asked with `before`. */
  mergeHistory(key, msgs, more, older) {
    const c = this.convs.get(key);
    if (!c) return;
    const mids = msgs.map((m) => m.mid);
    const pageMin = mids.length ? Math.min(...mids) : Infinity;
    let localMin = Infinity;
    let localMax = 0;
    for (const mid of c.messages.keys()) {
      localMin = Math.min(localMin, mid);
      localMax = Math.max(localMax, mid);
    }
    if (older) {
      c.more = more;
    } else if (c.messages.size && more && pageMin > localMax) {
      // The newest page does not reach what we hold: keep no gap in the view.
      c.messages.clear();
      c.more = more;
    } else if (!c.messages.size || pageMin <= localMin) {
      c.more = more;
    }
    for (const f of msgs) {
      if (!c.messages.has(f.mid)) c.messages.set(f.mid, messageOf(f));
      if (f.mid > c.lastMid) this.setLast(c, messageOf(f));
    }
    c.countedUpTo = Math.max(c.countedUpTo, c.lastMid);
    c.history = 'fresh';
    c.error = '';
    this.emit('conv', { key, older });
    this.emit('list');
  }

  // ---- outbox: {cmid, uid, key, kind, id, text, t, state: pending|failed, err}

  outboxFor(key) {
    const uid = this.me?.id;
    return this.outbox.filter((e) => e.key === key && e.uid === uid);
  }

  addOutbox(entry) {
    this.outbox.push(entry);
    this.saveOutbox();
    this.emit('conv', { key: entry.key, sent: true });
    this.emit('list');
  }

  updateOutbox(cmid, patch) {
    const e = this.outbox.find((x) => x.cmid === cmid);
    if (!e) return;
    Object.assign(e, patch);
    this.saveOutbox();
    this.emit('conv', { key: e.key });
  }

  removeOutbox(cmid) {
    const e = this.outbox.find((x) => x.cmid === cmid);
    this.outbox = this.outbox.filter((x) => x.cmid !== cmid);
    this.saveOutbox();
    if (e) {
      this.emit('conv', { key: e.key });
      this.emit('list');
    }
    return e;
  }

  /** CHAT_ACK: the entry becomes a stored message (once, even for dup:true). */
  ackOutbox(cmid, ack) {
    const e = this.outbox.find((x) => x.cmid === cmid);
    if (!e) return;
    this.outbox = this.outbox.filter((x) => x.cmid !== cmid);
    this.saveOutbox();
    const c = this.ensureConv(e.kind, e.id);
    if (!c.messages.has(ack.mid)) {
      const m = { mid: ack.mid, ts: ack.ts, from: e.uid, fromName: this.me?.name, text: e.text, cmid };
      c.messages.set(ack.mid, m);
      if (ack.mid > c.lastMid) this.setLast(c, m);
    }
    this.emit('conv', { key: e.key });
    this.emit('list');
  }

  // ---- derived views

  /** Sidebar order: unsent messages first, then newest message, then name. */
  sortedConvs() {
    const uid = this.me?.id;
    const pending = new Set(this.outbox.filter((e) => e.uid === uid).map((e) => e.key));
    return [...this.convs.values()].sort((a, b) => {
      const pa = pending.has(a.key) ? 1 : 0;
      const pb = pending.has(b.key) ? 1 : 0;
      if (pa !== pb) return pb - pa;
      if (a.lastMid !== b.lastMid) return b.lastMid - a.lastMid;
      return a.name.localeCompare(b.name);
    });
  }

  totalUnread() {
    let n = 0;
    for (const c of this.convs.values()) n += c.unread;
    return n;
  }

  /** A plain, detached copy for tests and debugging (window.chatApp.state()). */
  snapshot() {
    const uid = this.me?.id;
    return {
      conn: this.conn,
      me: this.me ? { ...this.me } : null,
      open: this.openKey,
      conversations: this.sortedConvs().map((c) => ({
        kind: c.kind,
        id: c.id,
        name: c.name,
        unread: c.unread,
        read: c.read,
        lastMid: c.lastMid,
        presence: c.kind === 'user' ? this.friends.get(c.id)?.state ?? null : null,
        messages: c.messages.size,
      })),
      friends: [...this.friends.values()].map((f) => ({ ...f })),
      groups: [...this.groups.values()].map((g) => ({ id: g.id, name: g.name, members: g.members.length })),
      pending: this.outbox.filter((e) => e.uid === uid).map((e) => ({ cmid: e.cmid, key: e.key, state: e.state })),
      unread: this.totalUnread(),
    };
  }
}
