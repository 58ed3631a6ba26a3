// Entry point: wires the store, the session and the views together, and owns
// the page-level concerns (title badge, tab visibility, phone navigation).

import { $ } from './dom.js';
import { Store } from './store.js';
import { Session } from './session.js';
import { mountShell } from './views/shell.js';
import { mountAuth } from './views/auth.js';
import { mountSidebar } from './views/sidebar.js';
import { mountConversation } from './views/conversation.js';
import { mountAccount } from './views/account.js';

const store = new Store();
const narrow = matchMedia('(max-width: 720px)');

// UI-only state and navigation shared by the views.
const ui = {
  accountOpen: false,
  resuming: false,
  isNarrow: () => narrow.matches,
  open(key) {
    ui.accountOpen = false;
    session.openConversation(key);
    ui.afterOpen();
  },
  /** After something opened in the pane: on a phone, Back should return to the list. */
  afterOpen() {
    account.render();
    conversation.renderOpen();
    layout();
    if (narrow.matches && !history.state?.pane) history.pushState({ pane: true }, '');
  },
  close() {
    if (history.state?.pane) {
      history.back(); // popstate below does the closing
      return;
    }
    closePane();
  },
  openAccount() {
    ui.accountOpen = true;
    ui.afterOpen();
  },
  closeAccount() {
    if (!ui.accountOpen) return;
    ui.accountOpen = false;
    account.render();
    conversation.renderOpen();
    layout();
  },
};

function closePane() {
  ui.accountOpen = false;
  session.closeConversation();
  account.render();
  conversation.renderOpen();
  layout();
}

// A message counts as read only when its conversation is open and the tab
// is actually visible (not behind another tab, not under the account panel).
const isViewing = (key) => store.openKey === key && document.visibilityState === 'visible' && !ui.accountOpen;
const session = new Session(store, { isViewing });

const shell = mountShell(store, session, ui);
mountAuth(store, session);
mountSidebar(store, session, ui);
const conversation = mountConversation(store, session, ui);
const account = mountAccount(store, session, ui);

/** Phone layout shows either the list or the pane (CSS reads data-pane). */
function layout() {
  document.body.dataset.pane = store.openKey || ui.accountOpen ? 'open' : 'list';
}

function renderView() {
  const view = store.me ? 'main' : ui.resuming ? 'loading' : 'auth';
  shell.renderMe();
  document.body.dataset.view = view;
  $('#loading-view').hidden = view !== 'loading';
  $('#auth-view').hidden = view !== 'auth';
  $('#main-view').hidden = view !== 'main';
  layout();
}

store.on('open', layout);
store.on('auth', () => {
  ui.resuming = false;
  if (!store.me) ui.accountOpen = false;
  renderView();
  updateTitle();
});

window.addEventListener('popstate', () => {
  if (store.openKey || ui.accountOpen) closePane();
});

$('#use-password').addEventListener('click', () => {
  // Forgets the stored token and shows the login form.
  session.logout('Log in with your user id and password.');
});

// ---- title badge while the tab is hidden: "(3) chatd"

function updateTitle() {
  const n = store.me ? store.totalUnread() : 0;
  document.title = document.visibilityState === 'hidden' && n > 0 ? `(${n}) chatd` : 'chatd';
}
store.on('list', updateTitle);

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    if (store.openKey) session.scheduleRead(store.openKey);
  } else {
    session.flushDelivered();
  }
  updateTitle();
});
window.addEventListener('pagehide', () => session.flushDelivered());

// ---- start

ui.resuming = session.start();
renderView();

// For tests and debugging only: read-only helpers, nothing else is global.
Object.defineProperty(window, 'chatApp', {
  value: Object.freeze({
    state: () => store.snapshot(),
    version: 1,
  }),
  enumerable: false,
  writable: false,
});
