// The sidebar: people search, the conversation list, and the group forms.

import { $, h, setMessage, formatShort, initial } from '../dom.js';

const SEARCH_DEBOUNCE_MS = 250;

export function mountSidebar(store, session, ui) {
  const list = $('#conversation-list');
  const empty = $('#conversation-empty');
  const items = new Map(); // conversation key -> <li>

  // ---- conversation list (keyed, so focus and hover survive updates)

  function makeItem(c) {
    const btn = h('button', {
      type: 'button',
      class: 'conv-item',
      'data-testid': 'conversation',
      dataset: { kind: c.kind, id: String(c.id) },
      onclick: () => ui.open(c.key),
    },
    h('span', { class: 'avatar', 'aria-hidden': 'true' }),
    h('span', { class: 'conv-main' },
      h('span', { class: 'conv-name' }),
      h('span', { class: 'conv-last' })),
    h('span', { class: 'conv-side' },
      h('time', { class: 'conv-time' }),
      h('span', { class: 'badge', 'data-testid': 'unread', hidden: true })),
    );
    return h('li', {}, btn);
  }

  function updateItem(li, c) {
    const btn = li.firstChild;
    const friend = c.kind === 'user' ? store.friends.get(c.id) : null;
    const avatar = btn.querySelector('.avatar');
    avatar.textContent = c.kind === 'group' ? '#' : initial(c.name);
    avatar.dataset.kind = c.kind;
    btn.querySelector('.conv-name').textContent = c.name;
    const last = btn.querySelector('.conv-last');
    const pending = store.outboxFor(c.key);
    let preview = c.lastText;
    if (pending.length) preview = pending[pending.length - 1].text;
    const mine = pending.length || (c.lastMid && c.lastFrom === store.me?.id);
    last.textContent = preview ? `${mine ? 'You: ' : ''}${preview.slice(0, 200)}` : c.kind === 'group' ? `Group #${c.id}` : '';
    const time = btn.querySelector('.conv-time');
    time.textContent = formatShort(c.lastTs);
    if (c.lastTs) time.dateTime = new Date(c.lastTs).toISOString();
    const badge = btn.querySelector('[data-testid=unread]');
    badge.textContent = c.unread ? String(c.unread) : '';
    badge.hidden = !c.unread;
    // Presence: friends only; the element exists exactly when it applies.
    let pres = btn.querySelector('[data-testid=presence]');
    if (friend && !pres) {
      pres = h('span', { class: 'presence', 'data-testid': 'presence' });
      btn.querySelector('.conv-main').append(pres);
    } else if (!friend && pres) {
      pres.remove();
      pres = null;
    }
    if (pres) {
      pres.textContent = friend.state === 'online' ? 'online' : 'offline';
      pres.dataset.state = pres.textContent;
    }
    btn.classList.toggle('unread', c.unread > 0);
    if (store.openKey === c.key) btn.setAttribute('aria-current', 'true');
    else btn.removeAttribute('aria-current');
    const who = c.kind === 'group' ? `Group ${c.name}` : c.name;
    btn.setAttribute('aria-label',
      `${who}${pres ? `, ${pres.textContent}` : ''}${c.unread ? `, ${c.unread} unread` : ''}`);
  }

  function renderList() {
    const convs = store.sortedConvs();
    const keep = new Set();
    let ref = list.firstChild;
    for (const c of convs) {
      keep.add(c.key);
      let li = items.get(c.key);
      if (!li) {
        li = makeItem(c);
        items.set(c.key, li);
      }
      updateItem(li, c);
      if (li === ref) ref = ref.nextSibling;
      else list.insertBefore(li, ref);
    }
    for (const [key, li] of items) {
      if (!keep.has(key)) {
        li.remove();
        items.delete(key);
      }
    }
    empty.hidden = convs.length > 0;
  }

  let pendingRender = null;
  function scheduleList() {
    // Coalesce: a login replays the inbox as hundreds of pushes.
    if (pendingRender) return;
    pendingRender = setTimeout(() => {
      pendingRender = null;
      renderList();
    }, 16);
  }
  store.on('list', scheduleList);
  store.on('auth', () => {
    list.replaceChildren();
    items.clear();
    renderList();
    clearSearch();
  });

  // ---- people search (FIND_USER with prefix, debounced, stale replies dropped)

  const input = $('#search-input');
  const results = $('#search-results');
  const searchErr = $('#search-error');
  let timer = null;
  let seqNo = 0;

  function clearSearch() {
    input.value = '';
    results.replaceChildren();
    results.hidden = true;
    setMessage(searchErr, '');
  }

  function renderResults(users, query) {
    results.replaceChildren();
    if (!users.length) {
      results.append(h('li', { class: 'hint', text: `Nobody's name starts with "${query}".` }));
    }
    for (const u of users) {
      const isMe = u.id === store.me?.id;
      const isFriend = store.friends.has(u.id);
      const add = h('button', {
        type: 'button',
        'data-testid': 'add-friend',
        'aria-label': `Add ${u.name} as a friend`,
        disabled: isMe || isFriend,
        text: isMe ? 'You' : isFriend ? 'Friend' : 'Add',
      });
      add.addEventListener('click', async () => {
        add.disabled = true;
        setMessage(searchErr, '');
        try {
          await session.addFriend(u);
          add.textContent = 'Friend';
        } catch (e) {
          add.disabled = false;
          setMessage(searchErr, `Could not add ${u.name}: ${e.message}`);
        }
      });
      const open = h('button', {
        type: 'button',
        class: 'result-open',
        'aria-label': `Message ${u.name}`,
        onclick: () => {
          session.openUser(u);
          clearSearch();
          ui.afterOpen();
        },
      },
      h('span', { class: 'avatar', 'aria-hidden': 'true', text: initial(u.name) }),
      h('span', { class: 'conv-main' },
        h('span', { class: 'conv-name', text: u.name }),
        h('span', { class: 'conv-last', text: `#${u.id} · ${u.state === 'online' ? 'online' : 'offline'}` })));
      results.append(h('li', {
        class: 'search-result',
        'data-testid': 'search-result',
        dataset: { userId: String(u.id) },
      }, open, add));
    }
    results.hidden = false;
  }

  input.addEventListener('input', () => {
    clearTimeout(timer);
    const q = input.value.trim();
    setMessage(searchErr, '');
    if (!q) {
      seqNo++;
      results.replaceChildren();
      results.hidden = true;
      return;
    }
    timer = setTimeout(async () => {
      const mine = ++seqNo;
      try {
        const users = await session.findUsers(q.slice(0, 64));
        if (mine === seqNo) renderResults(users, q);
      } catch (e) {
        if (mine === seqNo) setMessage(searchErr, `Search failed: ${e.message}`);
      }
    }, SEARCH_DEBOUNCE_MS);
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') clearSearch();
  });

  // ---- groups

  const groupErr = $('#group-error');

  async function runGroup(button, fn) {
    button.disabled = true;
    setMessage(groupErr, '');
    try {
      await fn();
    } catch (e) {
      setMessage(groupErr, e.message);
    } finally {
      button.disabled = false;
    }
  }

  $('#create-group-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const nameInput = $('#create-group-name');
    const name = nameInput.value.trim();
    if (!name) return setMessage(groupErr, 'Give the new group a name.');
    runGroup($('#create-group-submit'), async () => {
      const id = await session.createGroup(name);
      nameInput.value = '';
      setMessage(groupErr, `Created "${name}" (group #${id}). Share the id so others can join.`, 'info');
      ui.open(`group:${id}`);
    });
  });

  $('#join-group-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const idInput = $('#join-group-id');
    const raw = idInput.value.trim().replace(/^#/, '');
    const id = Number(raw);
    if (!raw || !Number.isSafeInteger(id) || id <= 0) return setMessage(groupErr, 'Enter the number of the group to join.');
    runGroup($('#join-group-submit'), async () => {
      await session.joinGroup(id);
      idInput.value = '';
      ui.open(`group:${id}`);
    });
  });

  return { renderList };
}
