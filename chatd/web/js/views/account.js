// Account panel: own id (people need it to log in) and password change.

import { $, setMessage } from '../dom.js';

export function mountAccount(store, session, ui) {
  const panel = $('#account-panel');
  const toggle = $('#account-toggle');
  const statusEl = $('#change-password-status');

  function render() {
    panel.hidden = !ui.accountOpen || !store.me;
    toggle.setAttribute('aria-expanded', String(ui.accountOpen));
    if (store.me) {
      $('#account-name').textContent = store.me.name;
      $('#account-id').textContent = String(store.me.id);
      $('#account-username').value = String(store.me.id);
    }
  }

  toggle.addEventListener('click', () => (ui.accountOpen ? ui.closeAccount() : ui.openAccount()));
  $('#account-close').addEventListener('click', () => ui.closeAccount());

  $('#change-password-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const oldPw = $('#old-password').value;
    const newPw = $('#new-password').value;
    if (!oldPw || !newPw) return setMessage(statusEl, 'Enter your current and your new password.');
    const btn = $('#change-password-submit');
    btn.disabled = true;
    setMessage(statusEl, '');
    try {
      await session.changePassword(oldPw, newPw);
      $('#old-password').value = '';
      $('#new-password').value = '';
      setMessage(statusEl, 'Password changed. Other devices will have to log in again.', 'info');
    } catch (e) {
      setMessage(statusEl, e.message);
    } finally {
      btn.disabled = false;
    }
  });

  store.on('auth', () => {
    setMessage(statusEl, '');
    render();
  });
  return { render };
}
