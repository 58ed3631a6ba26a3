// Log-in and register forms. Passwords go to the server and nowhere else;
// what survives a reload is the resume token session.js stores.

import { $, h, setMessage } from '../dom.js';

function busy(button, on) {
  button.disabled = on;
  button.setAttribute('aria-busy', on ? 'true' : 'false');
}

export function mountAuth(store, session) {
  const loginForm = $('#login-form');
  const regForm = $('#register-form');
  const loginErr = $('#login-error');
  const regErr = $('#register-error');
  const regResult = $('#register-result');

  async function doLogin(id, password) {
    const btn = $('#login-submit');
    busy(btn, true);
    setMessage(loginErr, '');
    try {
      await session.login(id, password);
      $('#login-password').value = '';
    } catch (e) {
      setMessage(loginErr, e.message);
    } finally {
      busy(btn, false);
    }
  }

  loginForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const raw = $('#login-id').value.trim().replace(/^#/, '');
    const password = $('#login-password').value;
    const id = Number(raw);
    if (!raw || !Number.isSafeInteger(id) || id < 0) {
      setMessage(loginErr, 'Enter your numeric user id (you got it when you registered).');
      return;
    }
    if (!password) {
      setMessage(loginErr, 'Enter your password.');
      return;
    }
    doLogin(id, password);
  });

  regForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = $('#register-name').value;
    const password = $('#register-password').value;
    setMessage(regErr, '');
    if (!name.trim()) return setMessage(regErr, 'Choose a name (1 to 64 characters).');
    if (!password) return setMessage(regErr, 'Choose a password.');
    const btn = $('#register-submit');
    busy(btn, true);
    try {
      const id = await session.register(name, password);
      regResult.replaceChildren(
        h('p', {}, 'Your user id is ', h('strong', { 'data-testid': 'new-user-id', text: id }),
          '. You log in with this id, so keep it.'),
        h('button', {
          type: 'button',
          class: 'primary',
          // The password stays in this closure only until the click.
          onclick: () => doLogin(id, password).then(() => {
            if (store.me) {
              regResult.replaceChildren();
              regResult.hidden = true;
            }
          }),
        }, 'Log in now'),
      );
      regResult.hidden = false;
      $('#login-id').value = String(id);
      $('#register-password').value = '';
    } catch (e) {
      setMessage(regErr, e.message);
    } finally {
      busy(btn, false);
    }
  });
}
