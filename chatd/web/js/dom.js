// Small DOM helpers. Every piece of user-supplied text reaches the page
// through textContent or createTextNode: this module has no way to parse HTML,
// so a message like "<img onerror=...>" is shown as the characters it is.

/**
 * Create an element. `attrs` keys: `class`, `text` (textContent), `on<event>`
 * handlers, `dataset` (object), boolean `hidden`/`disabled`, anything else as
 * an attribute. Children may be nodes, strings (as text nodes) or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Set an element's text and hide it when empty (error lines, badges). */
export function setMessage(el, text, kind = 'error') {
  if (!el) return;
  el.textContent = text || '';
  el.hidden = !text;
  el.dataset.kind = kind;
}

// Times are formatted in the viewer's own zone from the server's `ts`
// (milliseconds); the server's `time` string is in the server's zone.
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "14:05" today, "Mar 3, 14:05" on other days. */
export function formatTime(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return sameDay(d, new Date()) ? timeFmt.format(d) : `${dayFmt.format(d)}, ${timeFmt.format(d)}`;
}

/** Short form for the sidebar: time today, date otherwise. */
export function formatShort(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return sameDay(d, new Date()) ? timeFmt.format(d) : dayFmt.format(d);
}

export const formatFull = (ts) => (ts ? fullFmt.format(new Date(ts)) : '');

/** First letter (a whole grapheme where the browser can tell) for avatars. */
export function initial(name) {
  const s = String(name || '?').trim();
  if (typeof Intl.Segmenter === 'function') {
    const first = new Intl.Segmenter().segment(s)[Symbol.iterator]().next().value;
    if (first) return first.segment.toUpperCase();
  }
  return (Array.from(s)[0] || '?').toUpperCase();
}
