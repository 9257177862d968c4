// In-call features of the join page (docs/signaling.md, "In-call features"): text chat,
// "show me" photos, quality reports, the rating after the call. Loaded with import() when
// the call starts, so the pre-join page stays small. Everything built with DOM APIs:
// text from others only ever becomes text nodes (and http/https anchors).

const L = {
  en: {
    chat: 'Chat', chatTitle: 'Chat', message: 'Message', send: 'Send', you: 'You', staff: 'staff only',
    noMessages: 'No messages yet.', unread: '{n} new',
  },
  es: { chat: 'Chat', chatTitle: 'Chat', message: 'Mensaje', send: 'Enviar', you: 'Tú', staff: 'solo personal', noMessages: 'Aún no hay mensajes.', unread: '{n} nuevos' },
  fr: { chat: 'Chat', chatTitle: 'Chat', message: 'Message', send: 'Envoyer', you: 'Vous', staff: 'équipe seulement', noMessages: 'Pas encore de messages.', unread: '{n} nouveaux' },
  de: { chat: 'Chat', chatTitle: 'Chat', message: 'Nachricht', send: 'Senden', you: 'Sie', staff: 'nur intern', noMessages: 'Noch keine Nachrichten.', unread: '{n} neu' },
  pt: { chat: 'Chat', chatTitle: 'Chat', message: 'Mensagem', send: 'Enviar', you: 'Você', staff: 'só equipe', noMessages: 'Ainda sem mensagens.', unread: '{n} novas' },
};
const lang = L[document.documentElement.lang] ? document.documentElement.lang : 'en';
const tr = (k, vars = {}) => (L[lang][k] ?? L.en[k] ?? k).replace(/\{(\w+)\}/g, (_, v) => vars[v] ?? '');

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
};

const MAX_CHAT = 2000;
let S, send;

export default function start(state, sendMsg) {
  if (state.x) return;
  S = state;
  send = sendMsg;
  S.chats = [];
  const css = el('link', { rel: 'stylesheet', href: new URL('./incall.css', import.meta.url).href });
  document.head.append(css);
  chatUi();
  S.x = onMessage;
  for (const m of S.q.splice(0)) onMessage(m);
}

function onMessage(m) {
  if (m.type === 'chat') return onChat(m);
}

// --- chat

/** Appends `text` to `node`, http(s) URLs as anchors (new tab, no opener, no referrer). */
export function linkify(node, text) {
  let last = 0;
  for (const m of text.matchAll(/\bhttps?:\/\/[^\s<>"']+/gi)) {
    const raw = m[0].replace(/[.,;:!?)\]}]+$/, '');
    node.append(text.slice(last, m.index));
    let u = null;
    try { u = new URL(raw); } catch { /* not a URL: stays text */ }
    if (u && (u.protocol === 'http:' || u.protocol === 'https:')) {
      node.append(el('a', { href: u.href, textContent: raw, target: '_blank', rel: 'noopener noreferrer' }));
    } else node.append(raw);
    last = m.index + raw.length;
  }
  node.append(text.slice(last));
}

let unread = 0;

function chatUi() {
  const btn = el('button', { id: 'chat-btn', className: 'round', type: 'button', textContent: tr('chat') });
  btn.setAttribute('aria-expanded', 'false');
  btn.setAttribute('aria-controls', 'chat');
  const log = el('ol', { id: 'chat-log' });
  log.setAttribute('role', 'log');
  log.setAttribute('aria-live', 'polite');
  log.setAttribute('aria-labelledby', 'chat-title');
  const input = el('textarea', { id: 'chat-input', maxLength: MAX_CHAT, rows: 2, required: true });
  const form = el('form', { id: 'chat-form' },
    el('label', { htmlFor: 'chat-input', textContent: tr('message') }), input,
    el('button', { className: 'btn primary', type: 'submit', textContent: tr('send') }));
  const empty = el('p', { id: 'chat-empty', className: 'sub', textContent: tr('noMessages') });
  const panel = el('aside', { id: 'chat', hidden: true }, el('h2', { id: 'chat-title', textContent: tr('chatTitle') }), empty, log, form);
  panel.setAttribute('aria-labelledby', 'chat-title');
  $('call').append(panel);
  $('leave-btn').before(btn);
  btn.onclick = () => toggleChat();
  form.onsubmit = (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send({ type: 'chat', text });
    S.chatSentAt = Date.now();
    input.value = '';
  };
  // Enter sends, Shift+Enter makes a new line.
  input.addEventListener('keydown', (e) => {
    e.stopPropagation(); // typing is not the page's m/v shortcuts
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
}

function toggleChat(open) {
  const p = $('chat'), b = $('chat-btn');
  p.hidden = open === undefined ? !p.hidden : !open;
  b.setAttribute('aria-expanded', String(!p.hidden));
  if (!p.hidden) {
    unread = 0;
    b.textContent = tr('chat');
    $('chat-input').focus();
  }
}

function onChat(m) {
  S.chats.push({ id: m.id, from: m.from, text: m.text, at: m.at, wall: Date.now() });
  if (S.chats.length > 500) S.chats.shift();
  const mine = m.from === S.me;
  const who = el('span', { className: 'who', textContent: mine ? tr('you') : m.name || '' });
  if (m.internal) who.append(` · ${tr('staff')}`);
  const when = el('time', { dateTime: m.at, textContent: new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) });
  const body = el('p', { className: 'text' });
  linkify(body, m.text);
  const li = el('li', { className: mine ? 'mine' : '' }, who, ' ', when, body);
  li.dataset.id = m.id;
  if (m.internal) li.classList.add('internal');
  const log = $('chat-log');
  log.append(li);
  while (log.children.length > 500) log.firstChild.remove();
  $('chat-empty').hidden = true;
  li.scrollIntoView({ block: 'end' });
  if ($('chat').hidden && !mine) {
    unread += 1;
    $('chat-btn').textContent = `${tr('chat')} (${tr('unread', { n: unread })})`;
  }
}
