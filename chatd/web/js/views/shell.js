// The frame around everything: connection state, who is logged in, the
// notice banner, and which view (log in / chat) is showing.

import { $, setMessage } from '../dom.js';

export function mountShell(store, session, ui) {
  const connEl = $('#conn-state');
  const reconnectBtn = $('#reconnect-now');
  const meEl = $('#me');
  const banner = $('#banner');
  const bannerText = $('#banner-text');
  const bannerAction = $('#banner-action');
  let tick = null;

  function renderConn() {
    const { conn, retryAt } = store;
    let text = conn;
    if (conn === 'reconnecting') {
      const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      text = `reconnecting in ${secs}s`;
    }
    connEl.textContent = text;
    connEl.dataset.state = conn;
    reconnectBtn.hidden = conn !== 'reconnecting';
    // The countdown needs a clock only while it is showing.
    if (conn === 'reconnecting' && !tick) tick = setInterval(renderConn, 1000);
    if (conn !== 'reconnecting' && tick) {
      clearInterval(tick);
      tick = null;
    }
  }

  function renderMe() {
    const me = store.me;
    const loggedIn = !!me;
    meEl.hidden = !loggedIn;
    meEl.textContent = loggedIn ? `${me.name} #${me.id}` : '';
    if (loggedIn) meEl.dataset.userId = String(me.id);
    else delete meEl.dataset.userId;
    $('#logout').hidden = !loggedIn;
    $('#account-toggle').hidden = !loggedIn;
  }

  function renderNotice() {
    const n = store.notice;
    banner.hidden = !n;
    if (!n) return;
    banner.dataset.kind = n.kind;
    bannerText.textContent = n.text;
    bannerAction.hidden = !n.action;
    bannerAction.textContent = n.action ? n.action.label : '';
  }

  reconnectBtn.addEventListener('click', () => session.reconnectNow());
  bannerAction.addEventListener('click', () => {
    const run = store.notice?.action?.run;
    store.setNotice(null);
    run?.();
  });
  $('#banner-close').addEventListener('click', () => store.setNotice(null));

  $('#logout').addEventListener('click', async () => {
    const mine = store.outbox.filter((e) => e.uid === store.me?.id).length;
    if (mine && !confirm(`${mine} message(s) have not been sent yet and will be lost. Log out anyway?`)) return;
    ui.closeAccount();
    await session.logout();
  });

  store.on('conn', renderConn);
  store.on('notice', renderNotice);
  store.on('auth', (d) => {
    renderMe();
    if (!store.me) setMessage($('#auth-message'), d?.message || '', 'info');
    else setMessage($('#auth-message'), '');
  });
  renderConn();
  renderNotice();
  return { renderMe };
}
