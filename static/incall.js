// In-call features of the join page (docs/signaling.md, "In-call features"): text chat,
// "show me" photos, quality reports, the rating after the call. Loaded with import() when
// the call starts, so the pre-join page stays small. Everything built with DOM APIs:
// text from others only ever becomes text nodes (and http/https anchors).

const L = {
  en: {
    chat: 'Chat', chatTitle: 'Chat', message: 'Message', send: 'Send', you: 'You', staff: 'staff only',
    noMessages: 'No messages yet.', unread: '{n} new',
    askPhoto: 'Ask for a photo', captureFrame: 'Capture frame', photos: 'Photos', close: 'Close',
    photoFrom: 'Photo from {name}, {time}', frameFrom: 'Frame captured by {name}, {time}', open: 'Open full size',
    photoAsked: 'Asked {name} for a photo', photoTitle: '{name} asks for a photo',
    photoText: 'Point your camera at what you want to show, then take the photo. You can check it before sending.',
    takePhoto: 'Take photo', sendPhoto: 'Send photo', retake: 'Retake', cancel: 'Cancel',
    photoSent: 'Photo sent', photoFailed: 'The photo could not be sent. Try again.', noCameraPhoto: 'No camera is available for a photo.',
    precheckLine: '{name}: {camera}, {mic}, network: {net}', camOk: 'camera ok', camNo: 'no camera', micOk: 'microphone ok', micNo: 'no microphone',
    relayUdp: 'relay over UDP', relayTcp: 'relay over TCP', relayTls: 'relay over TLS', relayNone: 'no relay reachable', relayUntested: 'not tested',
    shareScreen: 'Share screen', stopShare: 'Stop sharing', screenOf: 'Screen of {name}',
    network: 'Network: {level}', good: 'good', fair: 'fair', poor: 'poor',
    rateTitle: 'How was the call?', stars: '{n} of 5', comment: 'Anything to add? (optional)', rateSend: 'Send rating',
    thanks: 'Thank you for your feedback.', rateFailed: 'The rating could not be sent.',
  },
  ar: {
    chat: 'الدردشة', chatTitle: 'الدردشة', message: 'الرسالة', send: 'إرسال', you: 'أنت', staff: 'للموظفين فقط',
    noMessages: 'لا توجد رسائل بعد.', unread: '{n} جديدة',
    askPhoto: 'اطلب صورة', captureFrame: 'التقط إطارًا', photos: 'الصور', close: 'إغلاق',
    photoFrom: 'صورة من {name}، {time}', frameFrom: 'إطار التقطه {name}، {time}', open: 'فتح بالحجم الكامل',
    photoAsked: 'طُلبت صورة من {name}', photoTitle: '{name} يطلب صورة',
    photoText: 'وجّه الكاميرا إلى ما تريد عرضه، ثم التقط الصورة. يمكنك مراجعتها قبل الإرسال.',
    takePhoto: 'التقط صورة', sendPhoto: 'أرسل الصورة', retake: 'أعد الالتقاط', cancel: 'إلغاء',
    photoSent: 'تم إرسال الصورة', photoFailed: 'تعذّر إرسال الصورة. حاول مرة أخرى.', noCameraPhoto: 'لا توجد كاميرا متاحة لالتقاط صورة.',
    precheckLine: '{name}: {camera}، {mic}، الشبكة: {net}', camOk: 'الكاميرا تعمل', camNo: 'لا كاميرا', micOk: 'الميكروفون يعمل', micNo: 'لا ميكروفون',
    relayUdp: 'ترحيل عبر UDP', relayTcp: 'ترحيل عبر TCP', relayTls: 'ترحيل عبر TLS', relayNone: 'لا يمكن الوصول إلى أي ترحيل', relayUntested: 'لم يُختبر',
    shareScreen: 'مشاركة الشاشة', stopShare: 'إيقاف المشاركة', screenOf: 'شاشة {name}',
    network: 'الشبكة: {level}', good: 'جيدة', fair: 'مقبولة', poor: 'ضعيفة',
    rateTitle: 'كيف كانت المكالمة؟', stars: '{n} من 5', comment: 'هل تود إضافة شيء؟ (اختياري)', rateSend: 'أرسل التقييم',
    thanks: 'شكرًا على ملاحظاتك.', rateFailed: 'تعذّر إرسال التقييم.',
  },
  es: {
    shareScreen: 'Compartir pantalla', stopShare: 'Dejar de compartir', screenOf: 'Pantalla de {name}',
    rateTitle: '¿Qué tal fue la llamada?', stars: '{n} de 5', comment: '¿Algo que añadir? (opcional)', rateSend: 'Enviar valoración', thanks: 'Gracias por tu opinión.',
    chat: 'Chat', chatTitle: 'Chat', message: 'Mensaje', send: 'Enviar', you: 'Tú', staff: 'solo personal', noMessages: 'Aún no hay mensajes.', unread: '{n} nuevos',
    photoTitle: '{name} te pide una foto', photoText: 'Apunta la cámara a lo que quieras mostrar y toma la foto. Podrás revisarla antes de enviarla.',
    takePhoto: 'Tomar foto', sendPhoto: 'Enviar foto', retake: 'Repetir', cancel: 'Cancelar', photoSent: 'Foto enviada', photoFailed: 'No se pudo enviar la foto. Inténtalo de nuevo.',
  },
  fr: {
    shareScreen: 'Partager l’écran', stopShare: 'Arrêter le partage', screenOf: 'Écran de {name}',
    rateTitle: 'Comment s’est passé l’appel ?', stars: '{n} sur 5', comment: 'Quelque chose à ajouter ? (facultatif)', rateSend: 'Envoyer la note', thanks: 'Merci pour votre avis.',
    chat: 'Chat', chatTitle: 'Chat', message: 'Message', send: 'Envoyer', you: 'Vous', staff: 'équipe seulement', noMessages: 'Pas encore de messages.', unread: '{n} nouveaux',
    photoTitle: '{name} vous demande une photo', photoText: 'Pointez la caméra vers ce que vous voulez montrer, puis prenez la photo. Vous pourrez la vérifier avant l’envoi.',
    takePhoto: 'Prendre la photo', sendPhoto: 'Envoyer la photo', retake: 'Reprendre', cancel: 'Annuler', photoSent: 'Photo envoyée', photoFailed: 'La photo n’a pas pu être envoyée. Réessayez.',
  },
  de: {
    shareScreen: 'Bildschirm teilen', stopShare: 'Teilen beenden', screenOf: 'Bildschirm von {name}',
    rateTitle: 'Wie war das Gespräch?', stars: '{n} von 5', comment: 'Noch etwas? (optional)', rateSend: 'Bewertung senden', thanks: 'Danke für Ihr Feedback.',
    chat: 'Chat', chatTitle: 'Chat', message: 'Nachricht', send: 'Senden', you: 'Sie', staff: 'nur intern', noMessages: 'Noch keine Nachrichten.', unread: '{n} neu',
    photoTitle: '{name} bittet um ein Foto', photoText: 'Richten Sie die Kamera auf das, was Sie zeigen möchten, und nehmen Sie das Foto auf. Sie können es vor dem Senden prüfen.',
    takePhoto: 'Foto aufnehmen', sendPhoto: 'Foto senden', retake: 'Neu aufnehmen', cancel: 'Abbrechen', photoSent: 'Foto gesendet', photoFailed: 'Das Foto konnte nicht gesendet werden. Bitte erneut versuchen.',
  },
  pt: {
    shareScreen: 'Compartilhar tela', stopShare: 'Parar de compartilhar', screenOf: 'Tela de {name}',
    rateTitle: 'Como foi a chamada?', stars: '{n} de 5', comment: 'Algo a acrescentar? (opcional)', rateSend: 'Enviar avaliação', thanks: 'Obrigado pela sua opinião.',
    chat: 'Chat', chatTitle: 'Chat', message: 'Mensagem', send: 'Enviar', you: 'Você', staff: 'só equipe', noMessages: 'Ainda sem mensagens.', unread: '{n} novas',
    photoTitle: '{name} pede uma foto', photoText: 'Aponte a câmera para o que deseja mostrar e tire a foto. Você pode conferi-la antes de enviar.',
    takePhoto: 'Tirar foto', sendPhoto: 'Enviar foto', retake: 'Tirar de novo', cancel: 'Cancelar', photoSent: 'Foto enviada', photoFailed: 'Não foi possível enviar a foto. Tente novamente.',
  },
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
const token = location.pathname.split('/').pop();
const api = (path) => `/api/v1/join/${encodeURIComponent(token)}/${path}`;
let S, send;

export default function start(state, sendMsg) {
  if (state.x) return;
  S = state;
  send = sendMsg;
  S.chats = [];
  const css = el('link', { rel: 'stylesheet', href: new URL('./incall.css', import.meta.url).href });
  document.head.append(css);
  // Panels end above the control bar, however many rows it wraps to.
  const bar = document.querySelector('#call .bar');
  if (bar && window.ResizeObserver) {
    new ResizeObserver(() => document.documentElement.style.setProperty('--bar', `${bar.offsetHeight}px`)).observe(bar);
  }
  chatUi();
  history();
  photoUi();
  screenUi();
  S.quality = {};
  // The end screen: customers rate the call.
  new MutationObserver((_, o) => {
    if (document.body.dataset.phase !== 'done') return;
    o.disconnect();
    if (S.role === 'customer' && ['ended', 'left'].includes(document.body.dataset.end)) rating();
  }).observe(document.body, { attributes: true, attributeFilter: ['data-phase'] });
  setInterval(() => report().catch(() => {}), 5000);
  S.x = onMessage;
  for (const m of S.q.splice(0)) onMessage(m);
}

function onMessage(m) {
  if (m.type === 'chat') return onChat(m);
  if (m.type === 'request_photo') return askedForPhoto(m);
  if (m.type === 'snapshot') return onSnapshot(m);
  if (m.type === 'quality') return onQuality(m);
  if (m.type === 'precheck') return onPrecheck(m);
}

// Before the customer joins: what their page found. UDP is the best path, then TCP, then TLS.
export function precheckLine(m) {
  const r = m.relay || {};
  const net = r.udp ? 'relayUdp' : r.tcp ? 'relayTcp' : r.tls ? 'relayTls'
    : [r.udp, r.tcp, r.tls].every((x) => x === null || x === undefined) ? 'relayUntested' : 'relayNone';
  return tr('precheckLine', { name: m.name || '', camera: tr(m.camera ? 'camOk' : 'camNo'), mic: tr(m.microphone ? 'micOk' : 'micNo'), net: tr(net) });
}

function onPrecheck(m) {
  S.prechecks = S.prechecks || {};
  const line = precheckLine(m);
  S.prechecks[m.participant_id] = { ...m, line };
  let p = $('precheck');
  if (!p) {
    p = el('p', { id: 'precheck' });
    p.setAttribute('role', 'status');
    $('call').append(p);
  }
  p.textContent = line;
  p.hidden = false;
  setTimeout(() => { if (p.textContent === line) p.hidden = true; }, 20000);
}

const staff = () => S.role === 'agent' || S.role === 'supervisor';
const customer = () => [...S.peers.values()].find((p) => p.e.role === 'customer' && !p.e.hidden);
const clock = (at) => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function button(id, text, onclick, cls = 'round') {
  return el('button', { id, className: cls, type: 'button', textContent: text, onclick });
}

function note(text) {
  const b = $('banner');
  b.textContent = text;
  b.hidden = false;
  setTimeout(() => { if (b.textContent === text) b.hidden = true; }, 4000);
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
  // A list that announces what is added (role=log would hide that it is a list).
  const log = el('ol', { id: 'chat-log' });
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

// A reloaded or late page shows the chat so far (before anything that arrives live).
async function history() {
  const r = await fetch(api('messages'), { credentials: 'omit', cache: 'no-store' }).catch(() => null);
  const v = r && r.ok ? await r.json().catch(() => null) : null;
  const live = $('chat-log').firstChild;
  for (const m of (v && v.items) || []) {
    if (seen.has(m.id)) continue;
    onChat({ id: m.id, from: m.participant_id, name: m.name, role: m.role, text: m.text, internal: m.internal, at: m.at }, live || null);
  }
}

const seen = new Set();
function onChat(m, before) {
  if (seen.has(m.id)) return;
  seen.add(m.id);
  S.chats.push({ id: m.id, from: m.from, text: m.text, at: m.at, wall: Date.now() });
  if (S.chats.length > 500) S.chats.shift();
  const mine = m.from === S.me;
  const who = el('span', { className: 'who', textContent: mine ? tr('you') : m.name || '' });
  if (m.internal) who.append(` · ${tr('staff')}`);
  const when = el('time', { dateTime: m.at, textContent: new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) });
  const body = el('p', { className: 'text', dir: 'auto' }); // a message keeps its own direction
  linkify(body, m.text);
  const li = el('li', { className: mine ? 'mine' : '' }, who, ' ', when, body);
  li.dataset.id = m.id;
  if (m.internal) li.classList.add('internal');
  const log = $('chat-log');
  if (before !== undefined) { log.insertBefore(li, before); $('chat-empty').hidden = true; return; }
  log.append(li);
  while (log.children.length > 500) log.firstChild.remove();
  $('chat-empty').hidden = true;
  li.scrollIntoView({ block: 'end' });
  if ($('chat').hidden && !mine) {
    unread += 1;
    $('chat-btn').textContent = `${tr('chat')} (${tr('unread', { n: unread })})`;
  }
}

// --- photos: agents ask, customers show

function photoUi() {
  if (S.role === 'agent') {
    const ask = button('photo-btn', tr('askPhoto'), askPhoto);
    const frame = button('frame-btn', tr('captureFrame'), captureFrame);
    $('leave-btn').before(ask, frame);
    const refresh = () => { ask.disabled = frame.disabled = !customer(); };
    refresh();
    setInterval(refresh, 1000);
  }
  if (S.role !== 'customer') {
    const list = el('div', { id: 'photo-list' });
    const panel = el('aside', { id: 'photos', hidden: true },
      el('h2', { id: 'photos-title', textContent: tr('photos') }), list,
      button('photos-close', tr('close'), () => { panel.hidden = true; }, 'btn'));
    panel.setAttribute('aria-labelledby', 'photos-title');
    $('call').append(panel);
  }
  S.photos = [];
}

function askPhoto() {
  const c = customer();
  if (!c) return;
  S.photoAskedAt = Date.now();
  send({ type: 'request_photo', to: c.id });
  note(tr('photoAsked', { name: c.e.name || '' }));
}

// A frame of the customer's video, as the agent sees it.
async function captureFrame() {
  const c = customer();
  const v = c && c.tile && c.tile.querySelector('video');
  if (!v || !v.videoWidth) return;
  const cv = el('canvas', { width: v.videoWidth, height: v.videoHeight });
  cv.getContext('2d').drawImage(v, 0, 0);
  const blob = await new Promise((r) => cv.toBlob(r, 'image/jpeg', 0.9));
  if (blob) await upload(blob, 'frame').catch(() => note(tr('photoFailed')));
}

async function upload(blob, kind) {
  const r = await fetch(api(`snapshots?kind=${kind}`), {
    method: 'POST', credentials: 'omit', headers: { 'content-type': 'application/octet-stream' }, body: blob,
  });
  if (r.status !== 201) throw new Error(`upload: HTTP ${r.status}`);
  return r.json();
}

function onSnapshot(m) {
  if (!$('photo-list')) return;
  const img = el('img', { alt: tr(m.kind === 'frame' ? 'frameFrom' : 'photoFrom', { name: m.name || '', time: clock(m.at) }) });
  const entry = { id: m.id, sha256: m.sha256, kind: m.kind, askedAt: S.photoAskedAt || null, shownAt: null };
  S.photos.push(entry);
  img.onload = () => { entry.shownAt = Date.now(); };
  img.src = api(`snapshots/${encodeURIComponent(m.id)}`);
  const link = el('a', { href: img.src, textContent: tr('open'), target: '_blank', rel: 'noopener noreferrer' });
  const fig = el('figure', {}, img, el('figcaption', { textContent: img.alt + ' · ' }, link));
  fig.dataset.id = m.id;
  $('photo-list').prepend(fig);
  $('photos').hidden = false;
}

// The camera the call sends: phones open one camera at a time, so the old track stops
// first; the senders switch tracks without renegotiating.
async function useCamera(facing) {
  const old = S.stream.getVideoTracks()[0];
  if (old) old.stop();
  let s;
  try {
    s = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: facing }, width: { ideal: 1280 }, height: { ideal: 720 } } });
  } catch {
    s = await navigator.mediaDevices.getUserMedia({ video: true }).catch(() => null);
  }
  const track = s && s.getVideoTracks()[0];
  if (old) S.stream.removeTrack(old);
  if (!track) return null;
  track.enabled = S.videoOn;
  for (const p of S.peers.values()) {
    const snd = p.pc && p.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
    if (snd) await snd.replaceTrack(track).catch(() => {});
  }
  S.stream.addTrack(track);
  S.facing = track.getSettings().facingMode || facing;
  $('self').srcObject = S.stream;
  $('self').classList.toggle('mirror', S.facing !== 'environment');
  return track;
}

async function takePhoto(track) {
  if (window.ImageCapture) {
    try {
      const b = await new ImageCapture(track).takePhoto();
      S.photoVia = 'ImageCapture';
      return b;
    } catch { /* fall back to a video frame */ }
  }
  S.photoVia = 'canvas';
  const v = el('video', { muted: true, playsInline: true, srcObject: new MediaStream([track]) });
  await v.play();
  const cv = el('canvas', { width: v.videoWidth, height: v.videoHeight });
  cv.getContext('2d').drawImage(v, 0, 0);
  v.srcObject = null;
  return new Promise((r) => cv.toBlob(r, 'image/jpeg', 0.9));
}

let photoBusy = false;
let photoNext = null; // a request that came while the camera was still switching back
async function askedForPhoto(m) {
  if (photoBusy || $('photo-dialog')) { photoNext = m; return; }
  photoBusy = true;
  const before = S.facing || 'user';
  const msg = el('p', { className: 'msg', hidden: true });
  msg.setAttribute('role', 'alert');
  const preview = el('canvas', { id: 'snap-preview', hidden: true, width: 640, height: 360 });
  const video = el('video', { id: 'snap-live', muted: true, autoplay: true, playsInline: true });
  const take = button('snap-take', tr('takePhoto'), null, 'btn primary');
  const sendBtn = button('snap-send', tr('sendPhoto'), null, 'btn primary');
  const retake = button('snap-retake', tr('retake'), null, 'btn');
  const cancel = button('snap-cancel', tr('cancel'), null, 'btn');
  sendBtn.hidden = retake.hidden = true;
  const d = el('div', { id: 'photo-dialog', className: 'card' },
    el('h2', { id: 'photo-title', textContent: tr('photoTitle', { name: m.name || '' }) }),
    el('p', { className: 'sub', textContent: tr('photoText') }), video, preview, msg,
    el('p', { className: 'row' }, cancel, retake, take, sendBtn));
  d.setAttribute('role', 'dialog');
  d.setAttribute('aria-modal', 'true');
  d.setAttribute('aria-labelledby', 'photo-title');
  $('call').append(d);
  let blob = null;
  const done = async () => {
    d.remove();
    // Busy until the camera is back, so a request meanwhile waits instead of reading the
    // rear camera as the one to return to.
    if (before !== 'environment') await useCamera(before).catch(() => {});
    photoBusy = false;
    const next = photoNext;
    photoNext = null;
    if (next) askedForPhoto(next);
  };
  cancel.onclick = done;
  d.addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.stopPropagation(); done(); } });
  const track = await useCamera('environment');
  if (!track) { msg.textContent = tr('noCameraPhoto'); msg.hidden = false; take.disabled = true; cancel.focus(); return; }
  video.srcObject = new MediaStream([track]);
  take.focus();
  take.onclick = async () => {
    take.disabled = true;
    blob = await takePhoto(track).catch(() => null);
    take.disabled = false;
    if (!blob) { msg.textContent = tr('photoFailed'); msg.hidden = false; return; }
    const bmp = await createImageBitmap(blob);
    const w = Math.min(640, bmp.width), h = Math.round((bmp.height * w) / bmp.width);
    preview.width = w;
    preview.height = h;
    preview.getContext('2d').drawImage(bmp, 0, 0, w, h);
    preview.setAttribute('role', 'img');
    preview.setAttribute('aria-label', tr('photoTitle', { name: m.name || '' }));
    video.hidden = take.hidden = true;
    preview.hidden = sendBtn.hidden = retake.hidden = false;
    sendBtn.focus();
  };
  retake.onclick = () => {
    blob = null;
    video.hidden = take.hidden = false;
    preview.hidden = sendBtn.hidden = retake.hidden = true;
    take.focus();
  };
  sendBtn.onclick = async () => {
    sendBtn.disabled = true;
    try {
      const v = await upload(blob, 'photo');
      S.lastPhoto = v;
      await done();
      note(tr('photoSent'));
    } catch {
      msg.textContent = tr('photoFailed');
      msg.hidden = false;
      sendBtn.disabled = false;
    }
  };
}

// --- quality: every page reports its worst link every 5 s; staff see a level per person

const prev = new Map();
const RANK = { none: 0, other: 1, cpu: 2, bandwidth: 3 };
const cap = (x, max) => Math.min(max, Math.max(0, Number.isFinite(x) ? x : 0));

// The connections that carry media now: each peer-to-peer one, and in a routed call the
// one to the server's media engine (routed.js).
function active() {
  const pcs = [...S.peers.values()].map((p) => ({ id: p.id, pc: p.pc }));
  if (S.routed && S.rt && S.rt.pc) pcs.push({ id: 'engine', pc: S.rt.pc });
  return pcs.filter((x) => x.pc && x.pc.connectionState === 'connected');
}

async function report() {
  const pcs = active();
  if (!pcs.length || document.body.dataset.phase !== 'call') return;
  let lost = 0, got = 0, jitter = 0, rtt = 0, bits = 0, fps = null, freezes = 0, lim = 'none';
  for (const p of pcs) {
    const r = await p.pc.getStats();
    r.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        const key = `${p.id}/${s.id}`, o = prev.get(key);
        if (o) {
          lost += Math.max(0, (s.packetsLost || 0) - o.packetsLost);
          got += Math.max(0, (s.packetsReceived || 0) - o.packetsReceived);
          const secs = (s.timestamp - o.timestamp) / 1000;
          if (secs > 0) bits += Math.max(0, ((s.bytesReceived || 0) - o.bytesReceived) * 8 / secs);
          if (s.kind === 'video') freezes += Math.max(0, (s.freezeCount || 0) - o.freezeCount);
        }
        prev.set(key, { packetsLost: s.packetsLost || 0, packetsReceived: s.packetsReceived || 0, bytesReceived: s.bytesReceived || 0, freezeCount: s.freezeCount || 0, timestamp: s.timestamp });
        jitter = Math.max(jitter, (s.jitter || 0) * 1000);
        if (s.kind === 'video') fps = Math.min(fps ?? Infinity, s.framesPerSecond || 0);
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.currentRoundTripTime !== undefined) {
        rtt = Math.max(rtt, s.currentRoundTripTime * 1000);
      } else if (s.type === 'outbound-rtp' && s.kind === 'video' && (RANK[s.qualityLimitationReason] || 0) > RANK[lim]) {
        lim = s.qualityLimitationReason;
      }
    });
  }
  const m = {
    type: 'stats', loss: cap(lost + got ? lost / (lost + got) : 0, 1), jitter: cap(jitter, 10000), rtt: cap(rtt, 60000),
    bitrate: cap(bits / 1000, 1e6), fps: cap(fps ?? 0, 240), freezes: Math.round(cap(freezes, 10000)), quality_limitation_reason: lim,
  };
  S.lastStats = m;
  send(m);
}

function onQuality(m) {
  S.quality[m.participant_id] = m;
  const p = S.peers.get(m.participant_id);
  const lbl = p && p.tile && p.tile.querySelector('.lbl');
  if (!lbl) return;
  let net = lbl.querySelector('.net');
  if (!net) { net = el('span', { className: 'net' }); lbl.append(' ', net); }
  net.dataset.level = m.level;
  net.textContent = `● ${tr(m.level)}`;
  net.title = tr('network', { level: tr(m.level) }) + ` · ${(m.loss_permille / 10).toFixed(1)} % · ${m.rtt_ms} ms`;
  net.setAttribute('aria-label', net.title);
}

// --- after the call: the customer's rating

function rating() {
  const stars = [1, 2, 3, 4, 5].map((n) => {
    const input = el('input', { type: 'radio', name: 'score', value: String(n), required: true });
    return el('label', { className: 'star' }, input, el('span', { textContent: tr('stars', { n }) }));
  });
  const comment = el('textarea', { id: 'rate-comment', maxLength: 1000, rows: 3 });
  const msg = el('p', { id: 'rate-msg', className: 'sub' });
  msg.setAttribute('role', 'status');
  const submit = el('button', { className: 'btn primary', type: 'submit', textContent: tr('rateSend') });
  const form = el('form', { id: 'rate-form' },
    el('fieldset', { className: 'stars' }, el('legend', { textContent: tr('rateTitle') }), ...stars),
    el('label', { htmlFor: 'rate-comment', textContent: tr('comment') }), comment,
    el('p', { className: 'row' }, submit), msg);
  form.onsubmit = async (e) => {
    e.preventDefault();
    const score = Number(new FormData(form).get('score'));
    if (!score) return;
    submit.disabled = true;
    const text = comment.value.trim();
    const r = await fetch(api('rating'), {
      method: 'POST', credentials: 'omit', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ score, comment: text || null }),
    }).catch(() => null);
    if (r && (r.status === 201 || r.status === 409)) {
      form.replaceChildren(el('p', { id: 'rate-thanks', textContent: tr('thanks') }));
      S.rated = score;
    } else {
      msg.textContent = tr('rateFailed');
      submit.disabled = false;
    }
  };
  $('done').append(form);
}

// --- screen share: an extra video track in a stream of its own (no renegotiation of the
// camera); receivers tell it from the camera by its stream and show it large.

const screen = { track: null, stream: null };
const watched = new WeakSet();
const camOf = new WeakMap();

function screenUi() {
  if (navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia && S.role !== 'supervisor') {
    const b = button('screen-btn', tr('shareScreen'), () => (screen.track ? stopShare() : share()));
    b.setAttribute('aria-pressed', 'false');
    $('leave-btn').before(b);
  }
  const v = el('video', { id: 'screen-view', autoplay: true, playsInline: true, muted: true, hidden: true });
  $('tiles').after(v);
  setInterval(follow, 500);
}

// New connections: watch what they receive; while sharing, send them the screen too.
function follow() {
  for (const p of S.peers.values()) {
    const pc = p.pc;
    if (!pc) continue;
    if (!watched.has(pc)) {
      watched.add(pc);
      if (p.src) camOf.set(pc, p.src);
      pc.addEventListener('track', (e) => onTrack(p, pc, e));
    }
    if (screen.track && p.e.send.video && !pc.getSenders().some((x) => x.track === screen.track)) {
      pc.addTrack(screen.track, screen.stream);
    }
  }
}

function onTrack(p, pc, e) {
  const stream = e.streams[0];
  if (!stream) return;
  const cam = camOf.get(pc);
  if (!cam) { camOf.set(pc, stream); return; }
  if (stream.id === cam.id || e.track.kind !== 'video') return;
  // join.js took the new stream for the tile: give the tile its camera back.
  p.src = cam;
  const tv = p.tile && p.tile.querySelector('video');
  if (tv) tv.srcObject = cam;
  const v = $('screen-view');
  v.srcObject = new MediaStream([e.track]);
  v.setAttribute('aria-label', tr('screenOf', { name: p.e.name || '' }));
  v.hidden = false;
  document.body.dataset.screen = p.id;
  S.screenFrom = p.id;
  const off = () => { if (v.srcObject && v.srcObject.getTracks()[0] === e.track) { v.hidden = true; v.srcObject = null; delete document.body.dataset.screen; S.screenFrom = null; } };
  e.track.addEventListener('ended', off);
  e.track.addEventListener('mute', off);
  e.track.addEventListener('unmute', () => { if (v.hidden && e.track.readyState === 'live') { v.srcObject = new MediaStream([e.track]); v.hidden = false; S.screenFrom = p.id; } });
  stream.addEventListener('removetrack', off);
}

async function share() {
  let s;
  try { s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false }); } catch { return; }
  screen.track = s.getVideoTracks()[0];
  screen.stream = new MediaStream([screen.track]);
  screen.track.contentHint = 'detail';
  screen.track.addEventListener('ended', stopShare);
  follow();
  const b = $('screen-btn');
  b.textContent = tr('stopShare');
  b.setAttribute('aria-pressed', 'true');
  S.sharing = true;
}

function stopShare() {
  const t = screen.track;
  if (!t) return;
  screen.track = null;
  for (const p of S.peers.values()) {
    const snd = p.pc && p.pc.getSenders().find((x) => x.track === t);
    if (snd) p.pc.removeTrack(snd);
  }
  t.stop();
  const b = $('screen-btn');
  b.textContent = tr('shareScreen');
  b.setAttribute('aria-pressed', 'false');
  S.sharing = false;
}
