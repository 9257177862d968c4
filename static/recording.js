// Recording on the call page (docs/signaling.md, "Recording"): the indicator every page
// shows while anything is written, the consent prompt (nothing of a participant is
// written before they agree), a control to withdraw or allow at any time, who is and is
// not recorded (badges on the tiles, the agent's list), and the agent's Start / Pause /
// Resume / Stop. Loaded by incall.js on the first `recording` message, so neither the
// pre-join page nor calls that are never recorded carry it. Text only as text nodes.

const L = {
  en: {
    rec: 'Recording', recPaused: 'Recording paused',
    consentTitle: 'This call is recorded',
    consentText: 'This call is recorded so that it can be reviewed later. Your voice and picture are recorded only if you agree. You can withdraw at any time; the call goes on either way.',
    agree: 'I agree', decline: 'Do not record me', withdraw: 'Stop recording me', allow: 'Allow recording',
    recorded: 'recorded', notRecorded: 'not recorded',
    given: 'agreed', declined: 'declined', withdrawn: 'withdrew', pending: 'not answered yet',
    start: 'Start recording', pause: 'Pause recording', resume: 'Resume recording', stop: 'Stop recording',
    panel: 'Recording consent', you: 'You', controls: 'Recording',
  },
  es: {
    rec: 'Grabando', recPaused: 'Grabación en pausa',
    consentTitle: 'Esta llamada se graba',
    consentText: 'Esta llamada se graba para poder revisarla más tarde. Tu voz e imagen solo se graban si lo aceptas. Puedes retirar tu consentimiento en cualquier momento; la llamada sigue igualmente.',
    agree: 'Acepto', decline: 'No grabarme', withdraw: 'Dejar de grabarme', allow: 'Permitir la grabación',
    recorded: 'grabado', notRecorded: 'no grabado',
    given: 'aceptó', declined: 'rechazó', withdrawn: 'retiró', pending: 'sin respuesta',
    start: 'Iniciar grabación', pause: 'Pausar grabación', resume: 'Reanudar grabación', stop: 'Detener grabación',
    panel: 'Consentimiento de grabación', you: 'Tú', controls: 'Grabación',
  },
  de: {
    rec: 'Aufnahme läuft', recPaused: 'Aufnahme pausiert',
    consentTitle: 'Dieses Gespräch wird aufgezeichnet',
    consentText: 'Dieses Gespräch wird aufgezeichnet, damit es später nachvollzogen werden kann. Ihre Stimme und Ihr Bild werden nur aufgezeichnet, wenn Sie zustimmen. Sie können jederzeit widerrufen; das Gespräch geht in jedem Fall weiter.',
    agree: 'Ich stimme zu', decline: 'Mich nicht aufzeichnen', withdraw: 'Aufzeichnung von mir beenden', allow: 'Aufzeichnung erlauben',
    recorded: 'wird aufgezeichnet', notRecorded: 'wird nicht aufgezeichnet',
    given: 'zugestimmt', declined: 'abgelehnt', withdrawn: 'widerrufen', pending: 'noch keine Antwort',
    start: 'Aufnahme starten', pause: 'Aufnahme pausieren', resume: 'Aufnahme fortsetzen', stop: 'Aufnahme beenden',
    panel: 'Einwilligung zur Aufnahme', you: 'Sie', controls: 'Aufnahme',
  },
  fr: {
    rec: 'Enregistrement', recPaused: 'Enregistrement en pause',
    consentTitle: 'Cet appel est enregistré',
    consentText: 'Cet appel est enregistré pour pouvoir être réécouté plus tard. Votre voix et votre image ne sont enregistrées que si vous l’acceptez. Vous pouvez retirer votre accord à tout moment ; l’appel continue dans tous les cas.',
    agree: 'J’accepte', decline: 'Ne pas m’enregistrer', withdraw: 'Ne plus m’enregistrer', allow: 'Autoriser l’enregistrement',
    recorded: 'enregistré', notRecorded: 'non enregistré',
    given: 'a accepté', declined: 'a refusé', withdrawn: 'a retiré son accord', pending: 'pas encore de réponse',
    start: 'Démarrer l’enregistrement', pause: 'Mettre en pause', resume: 'Reprendre l’enregistrement', stop: 'Arrêter l’enregistrement',
    panel: 'Accord d’enregistrement', you: 'Vous', controls: 'Enregistrement',
  },
  pt: {
    rec: 'Gravando', recPaused: 'Gravação pausada',
    consentTitle: 'Esta chamada é gravada',
    consentText: 'Esta chamada é gravada para poder ser revista depois. Sua voz e imagem só são gravadas se você concordar. Você pode retirar o consentimento a qualquer momento; a chamada continua de qualquer forma.',
    agree: 'Concordo', decline: 'Não me gravar', withdraw: 'Parar de me gravar', allow: 'Permitir gravação',
    recorded: 'gravado', notRecorded: 'não gravado',
    given: 'concordou', declined: 'recusou', withdrawn: 'retirou', pending: 'sem resposta ainda',
    start: 'Iniciar gravação', pause: 'Pausar gravação', resume: 'Retomar gravação', stop: 'Parar gravação',
    panel: 'Consentimento de gravação', you: 'Você', controls: 'Gravação',
  },
  ar: {
    rec: 'جارٍ التسجيل', recPaused: 'التسجيل متوقف مؤقتًا',
    consentTitle: 'هذه المكالمة مسجّلة',
    consentText: 'تُسجَّل هذه المكالمة لمراجعتها لاحقًا. لا يُسجَّل صوتك وصورتك إلا إذا وافقت. يمكنك سحب موافقتك في أي وقت؛ وتستمر المكالمة في الحالتين.',
    agree: 'أوافق', decline: 'لا تسجّلني', withdraw: 'أوقف تسجيلي', allow: 'اسمح بالتسجيل',
    recorded: 'يُسجَّل', notRecorded: 'لا يُسجَّل',
    given: 'وافق', declined: 'رفض', withdrawn: 'سحب الموافقة', pending: 'لم يُجب بعد',
    start: 'ابدأ التسجيل', pause: 'أوقف التسجيل مؤقتًا', resume: 'استأنف التسجيل', stop: 'أوقف التسجيل',
    panel: 'الموافقة على التسجيل', you: 'أنت', controls: 'التسجيل',
  },
};
const lang = L[document.documentElement.lang] ? document.documentElement.lang : 'en';
const tr = (k) => L[lang][k] ?? L.en[k] ?? k;

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
};
const token = location.pathname.split('/').pop();

let S, send;
let last = null;
let wording = null;
// Whether the prompt was answered (or dismissed) on this page: it is not shown again for the
// same recording until the state changes.
let asked = false;

export default function start(state, sendMsg) {
  S = state;
  send = sendMsg;
  document.head.append(el('link', { rel: 'stylesheet', href: new URL('./recording.css', import.meta.url).href }));
  // The configured wording, when the operator set one for this language.
  fetch(`/api/v1/join/${encodeURIComponent(token)}/recording`)
    .then((r) => (r.ok ? r.json() : null))
    .then((v) => { wording = v && v.wording ? v.wording[lang] || null : null; if (last) render(last); })
    .catch(() => {});
  return (m) => { if (m.type === 'recording') render(m); };
}

const active = (m) => m.state === 'recording' || m.state === 'paused';
const mine = (m) => (m.participants || []).find((p) => p.id === S.me);
const nameOf = (id) => (id === S.me ? tr('you') : (S.peers.get(id) && S.peers.get(id).e.name) || '');

function render(m) {
  const changed = !last || last.state !== m.state;
  last = m;
  if (changed) asked = false;
  document.body.dataset.rec = m.writing ? 'on' : active(m) ? 'paused' : 'off';
  indicator(m);
  consent(m);
  badges(m);
  if (S.role === 'agent') agentUi(m);
}

// The indicator: on every page, while anything is written (and, quieter, while paused).
function indicator(m) {
  let d = $('rec-ind');
  if (!d) {
    d = el('p', { id: 'rec-ind' });
    d.setAttribute('role', 'status');
    d.setAttribute('aria-live', 'polite');
    $('call').append(d);
  }
  d.hidden = !m.writing && m.state !== 'paused';
  d.dataset.writing = m.writing ? 'true' : 'false';
  d.textContent = m.writing ? tr('rec') : m.state === 'paused' ? tr('recPaused') : '';
}

// The prompt, before anything of this participant is written; and the control to change
// one's mind at any time.
function consent(m) {
  const me = mine(m);
  const need = active(m) && me && me.asked;
  const open = need && !me.consent && !asked;
  let d = $('rec-consent');
  if (open && !d) {
    const agree = el('button', { id: 'rec-agree', type: 'button', className: 'btn primary', textContent: tr('agree') });
    const decline = el('button', { id: 'rec-decline', type: 'button', className: 'btn', textContent: tr('decline') });
    d = el('div', { id: 'rec-consent', className: 'card' },
      el('h2', { id: 'rec-consent-title', textContent: tr('consentTitle') }),
      el('p', { id: 'rec-consent-text', className: 'sub', textContent: wording || tr('consentText') }),
      el('p', { className: 'row' }, decline, agree));
    d.setAttribute('role', 'dialog');
    d.setAttribute('aria-modal', 'false');
    d.setAttribute('aria-labelledby', 'rec-consent-title');
    d.setAttribute('aria-describedby', 'rec-consent-text');
    const answer = (decision) => { asked = true; send({ type: 'consent', decision }); d.remove(); };
    agree.onclick = () => answer('given');
    decline.onclick = () => answer('declined');
    $('call').append(d);
    agree.focus();
  } else if (!open && d) {
    d.remove();
  }
  if (d && wording) $('rec-consent-text').textContent = wording;
  // Withdraw (or allow after all): a visible control in the bar while the recording runs.
  let b = $('rec-me');
  if (!b) {
    b = el('button', { id: 'rec-me', type: 'button', className: 'round', hidden: true });
    b.onclick = () => {
      const now = mine(last);
      send({ type: 'consent', decision: now && now.consent === 'given' ? 'withdrawn' : 'given' });
    };
    const bar = document.querySelector('#call .bar');
    bar.insertBefore(b, $('leave-btn'));
  }
  b.hidden = !need || !me.consent;
  if (me && me.consent) {
    b.textContent = tr(me.consent === 'given' ? 'withdraw' : 'allow');
  }
}

// Who is and is not recorded: a badge on each participant's tile (one's own state is on
// the withdraw / allow control).
function badges(m) {
  const on = active(m);
  for (const p of m.participants || []) {
    const tile = document.querySelector(`.tile[data-id="${CSS.escape(p.id)}"] .lbl`);
    if (!tile) continue;
    let b = tile.querySelector('.rb');
    if (!b) { b = el('span', { className: 'rb' }); tile.append(' ', b); }
    b.hidden = !on || !p.asked;
    b.dataset.on = p.recorded ? 'true' : 'false';
    b.textContent = tr(p.recorded ? 'recorded' : 'notRecorded');
  }
}

// The agent: each participant's consent, and the controls.
function agentUi(m) {
  let box = $('rec-box');
  if (!box) {
    box = el('section', { id: 'rec-box' }, el('h2', { id: 'rec-box-title', textContent: tr('panel') }), el('ul', { id: 'rec-list' }));
    box.setAttribute('aria-labelledby', 'rec-box-title');
    $('panel').insertBefore(box, $('tools'));
    const group = el('div', { id: 'rec-ctl' });
    group.setAttribute('role', 'group');
    group.setAttribute('aria-label', tr('controls'));
    for (const a of ['start', 'pause', 'resume', 'stop']) {
      const b = el('button', { id: `rec-${a}`, type: 'button', className: 'round', textContent: tr(a), hidden: true });
      b.onclick = () => { S.acted = Date.now(); send({ type: 'recording', action: a }); };
      group.append(b);
    }
    document.querySelector('#call .bar').insertBefore(group, $('leave-btn'));
  }
  $('rec-list').replaceChildren(...(m.participants || []).filter((p) => p.asked).map((p) => {
    const li = el('li');
    li.append(el('span', { dir: 'auto', textContent: nameOf(p.id) }), ` · ${tr(p.consent || 'pending')} · ${tr(p.recorded ? 'recorded' : 'notRecorded')}`);
    li.dataset.id = p.id;
    return li;
  }));
  box.hidden = !active(m);
  const onDemand = m.mode === 'on_demand';
  $('rec-start').hidden = !onDemand || active(m);
  $('rec-pause').hidden = m.state !== 'recording';
  $('rec-resume').hidden = m.state !== 'paused';
  $('rec-stop').hidden = !onDemand || !active(m);
}
