// The open conversation: header, group members, messages and the composer.
//
// Messages are rendered keyed, so a pending message keeps its element when
// its CHAT_ACK turns it into a sent one (key "c:<cmid>" on both), and a
// history page prepends without rebuilding what is on screen.

import { $, h, setMessage, formatTime, formatFull } from '../dom.js';

const LOAD_OLDER_PX = 150; // this close to the top loads the previous page
const STICK_BOTTOM_PX = 80; // this close to the bottom follows new messages

export function mountConversation(store, session, ui) {
  const pane = $('#conversation');
  const box = $('#messages');
  const listEl = $('#message-list');
  const status = $('#history-status');
  const composer = $('#composer');
  const sendBtn = $('#send');
  const convErr = $('#conversation-error');
  const composerErr = $('#composer-error');
  const membersEl = $('#members');
  const drafts = new Map(); // key -> unsent text, kept while switching chats
  let els = new Map(); // message key -> <li>
  let shownKey = null;

  const current = () => (store.openKey ? store.conv(store.openKey) : null);

  // ---- header

  function renderHeader() {
    const c = current();
    if (!c) return;
    $('#conversation-title').textContent = c.name;
    pane.dataset.kind = c.kind;
    pane.dataset.id = String(c.id);
    const sub = $('#conversation-sub');
    const friend = c.kind === 'user' ? store.friends.get(c.id) : null;
    if (c.kind === 'group') {
      const g = store.groups.get(c.id);
      const n = g?.members?.length || 0;
      sub.textContent = `Group #${c.id}${n ? ` · ${n} member${n === 1 ? '' : 's'}` : ''}`;
    } else if (c.id === store.me?.id) {
      sub.textContent = 'Notes to yourself';
    } else if (friend) {
      sub.textContent = `#${c.id} · ${friend.state === 'online' ? 'online' : 'offline'}`;
    } else {
      sub.textContent = `#${c.id} · not in your friends`;
    }
    $('#leave-group').hidden = c.kind !== 'group';
    $('#remove-friend').hidden = !friend;
    $('#add-friend-here').hidden = c.kind !== 'user' || !!friend || c.id === store.me?.id;
  }

  function renderMembers() {
    const c = current();
    if (!c || c.kind !== 'group') {
      membersEl.hidden = true;
      membersEl.replaceChildren();
      return;
    }
    const g = store.groups.get(c.id);
    const members = [...(g?.members || [])].sort((a, b) =>
      (a.role === 'creator' ? 0 : 1) - (b.role === 'creator' ? 0 : 1) || a.name.localeCompare(b.name));
    membersEl.replaceChildren(...members.map((m) => h('li', {
      class: 'member',
      'data-testid': 'member',
      dataset: { userId: String(m.id), role: m.role || 'normal', state: m.state || 'offline' },
      title: `${m.name} (#${m.id}), ${m.state === 'online' ? 'online' : 'offline'}`,
    },
    h('span', { class: 'dot', 'aria-hidden': 'true' }),
    h('span', { class: 'member-name', text: m.name }),
    m.role === 'creator' ? ' ' : null,
    m.role === 'creator' ? h('span', { class: 'role', text: 'creator' }) : null)));
    membersEl.hidden = members.length === 0;
  }

  // ---- messages

  function messageItems(c) {
    const sent = [...c.messages.values()].sort((a, b) => a.mid - b.mid);
    const pending = store.outboxFor(c.key).sort((a, b) => a.t - b.t);
    const out = sent.map((m) => ({ key: m.cmid ? `c:${m.cmid}` : `m:${m.mid}`, m, pending: null }));
    for (const e of pending) out.push({ key: `c:${e.cmid}`, m: null, pending: e });
    return out;
  }

  function makeMessage() {
    const text = h('div', { class: 'msg-text', 'data-testid': 'message-text' });
    return h('li', { class: 'msg', 'data-testid': 'message' },
      h('div', { class: 'bubble' },
        h('div', { class: 'msg-author' }),
        text,
        h('div', { class: 'msg-meta' }, h('time'), h('span', { class: 'msg-status' })),
        h('div', { class: 'msg-fail', hidden: true })));
  }

  function updateMessage(li, item, c) {
    const meId = store.me?.id;
    const m = item.m;
    const e = item.pending;
    const mine = e ? true : m.from === meId;
    const state = e ? e.state : 'sent';
    li.classList.toggle('mine', mine);
    li.dataset.state = state;
    if (m) li.dataset.mid = String(m.mid);
    else delete li.dataset.mid;
    const cmid = e ? e.cmid : m.cmid;
    if (cmid) li.dataset.cmid = cmid;
    const author = li.querySelector('.msg-author');
    author.textContent = !mine && c.kind === 'group' ? m.fromName || `#${m.from}` : '';
    author.hidden = !author.textContent;
    const text = li.querySelector('.msg-text');
    const body = e ? e.text : m.text;
    if (text.textContent !== body) text.textContent = body; // never HTML
    const ts = e ? e.t : m.ts;
    const time = li.querySelector('time');
    time.textContent = formatTime(ts);
    time.dateTime = new Date(ts || 0).toISOString();
    time.title = formatFull(ts);
    const st = li.querySelector('.msg-status');
    st.textContent = state === 'pending' ? 'sending…' : state === 'failed' ? 'not sent' : mine ? 'sent' : '';
    const fail = li.querySelector('.msg-fail');
    if (state === 'failed') {
      fail.replaceChildren(
        h('span', { text: e.err || 'The server refused this message.' }),
        h('button', { type: 'button', onclick: () => session.retry(e.cmid) }, 'Retry'),
        h('button', { type: 'button', onclick: () => session.discard(e.cmid) }, 'Discard'));
      fail.hidden = false;
    } else if (!fail.hidden) {
      fail.hidden = true;
      fail.replaceChildren();
    }
  }

  function renderMessages(detail = {}) {
    const c = current();
    if (!c) return;
    const first = shownKey !== c.key;
    if (first) {
      els = new Map();
      listEl.replaceChildren();
      shownKey = c.key;
    }
    const fromBottom = box.scrollHeight - box.scrollTop;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < STICK_BOTTOM_PX;
    const items = messageItems(c);
    const keep = new Set();
    let ref = listEl.firstChild;
    for (const item of items) {
      keep.add(item.key);
      let li = els.get(item.key);
      if (!li) {
        li = makeMessage();
        els.set(item.key, li);
      }
      updateMessage(li, item, c);
      if (li === ref) ref = ref.nextSibling;
      else listEl.insertBefore(li, ref);
    }
    for (const [key, li] of els) {
      if (!keep.has(key)) {
        li.remove();
        els.delete(key);
      }
    }
    // History state line at the top.
    if (c.history === 'loading' && !c.messages.size) status.textContent = 'Loading messages…';
    else if (c.loadingOlder) status.textContent = 'Loading older messages…';
    else if (c.history === 'fresh' && !c.more) status.textContent = items.length ? 'This is the beginning of the conversation.' : 'No messages yet. Say hello!';
    else status.textContent = '';
    setMessage(convErr, c.error);
    // Scroll: keep the reader's place when older messages arrive above;
    // follow new ones when already at the bottom or after sending.
    if (detail.older) box.scrollTop = box.scrollHeight - fromBottom;
    else if (first || nearBottom || detail.sent) box.scrollTop = box.scrollHeight;
    maybeLoadOlder();
  }

  function maybeLoadOlder() {
    const c = current();
    if (!c || c.history !== 'fresh' || !c.more || c.loadingOlder) return;
    if (box.scrollTop < LOAD_OLDER_PX || box.scrollHeight <= box.clientHeight) session.loadHistory(c.key, true);
  }
  box.addEventListener('scroll', maybeLoadOlder, { passive: true });

  let scheduled = null;
  let pendingDetail = {};
  function scheduleMessages(detail) {
    pendingDetail = { older: pendingDetail.older || detail?.older, sent: pendingDetail.sent || detail?.sent };
    if (scheduled) return;
    scheduled = setTimeout(() => {
      scheduled = null;
      const d = pendingDetail;
      pendingDetail = {};
      renderMessages(d);
    }, 16);
  }

  // ---- open / close

  function renderOpen() {
    const c = current();
    if (shownKey && shownKey !== store.openKey) drafts.set(shownKey, composer.value);
    pane.hidden = !c || ui.accountOpen;
    $('#pane-empty').hidden = !!c || ui.accountOpen;
    if (!c) {
      shownKey = null;
      els = new Map();
      listEl.replaceChildren();
      return;
    }
    if (shownKey !== c.key) {
      composer.value = drafts.get(c.key) || '';
      autosize();
      setMessage(composerErr, '');
      setMessage(convErr, '');
    }
    renderHeader();
    renderMembers();
    renderMessages();
    if (!ui.isNarrow()) composer.focus({ preventScroll: true });
  }

  store.on('open', renderOpen);
  store.on('conv', (d) => {
    if (d.key === store.openKey) scheduleMessages(d);
  });
  store.on('list', () => {
    if (current()) renderHeader();
  });
  store.on('members', (d) => {
    const c = current();
    if (c && c.kind === 'group' && c.id === d.id) {
      renderMembers();
      renderHeader();
    }
  });
  store.on('auth', () => {
    drafts.clear();
    renderOpen();
  });

  // ---- composer: Enter sends, Shift+Enter is a newline

  function autosize() {
    composer.style.height = 'auto';
    composer.style.height = `${Math.min(composer.scrollHeight, 180)}px`;
    // A scrollbar only once the text outgrows the maximum height.
    composer.style.overflowY = composer.scrollHeight > 180 ? 'auto' : 'hidden';
    sendBtn.disabled = !composer.value.trim();
  }
  composer.addEventListener('input', autosize);
  composer.addEventListener('keydown', (ev) => {
    // isComposing: Enter that confirms an IME candidate must not send.
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      submit();
    }
  });
  $('#composer-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit();
  });

  function submit() {
    const c = current();
    const text = composer.value;
    if (!c || !text.trim()) return;
    setMessage(composerErr, '');
    try {
      session.send(c.key, text);
    } catch (e) {
      setMessage(composerErr, e.message);
      return;
    }
    composer.value = '';
    drafts.delete(c.key);
    autosize();
    if (store.conn !== 'online') {
      setMessage(composerErr, 'You are offline; the message will be sent when the connection is back.', 'info');
    }
  }

  // ---- header actions

  async function act(button, fn) {
    button.disabled = true;
    setMessage(convErr, '');
    try {
      await fn();
    } catch (e) {
      setMessage(convErr, e.message);
    } finally {
      button.disabled = false;
    }
  }

  $('#leave-group').addEventListener('click', (ev) => {
    const c = current();
    if (!c || c.kind !== 'group') return;
    // No confirm(): leaving is undone by joining again, offered right away.
    act(ev.currentTarget, async () => {
      await session.leaveGroup(c.id);
      ui.close();
      store.setNotice(`You left "${c.name}" (group #${c.id}).`, 'info', {
        label: 'Join again',
        run: () => session.joinGroup(c.id).catch((e) => store.setNotice(e.message, 'error')),
      });
    });
  });
  $('#remove-friend').addEventListener('click', (ev) => {
    const c = current();
    if (!c || c.kind !== 'user') return;
    const user = { id: c.id, name: c.name, state: store.friends.get(c.id)?.state };
    act(ev.currentTarget, async () => {
      await session.removeFriend(c.id);
      store.setNotice(`${c.name} is no longer your friend.`, 'info', {
        label: 'Undo',
        run: () => session.addFriend(user).catch((e) => store.setNotice(e.message, 'error')),
      });
    });
  });
  $('#add-friend-here').addEventListener('click', (ev) => {
    const c = current();
    if (!c || c.kind !== 'user') return;
    act(ev.currentTarget, () => session.addFriend({ id: c.id, name: c.name }).then(() => session.refreshFriends()));
  });
  $('#back').addEventListener('click', () => ui.close());

  autosize();
  return { renderOpen };
}
