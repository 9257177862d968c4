// The Chatwoot dashboard app: Chatwoot frames this page beside a conversation and tells it
// which conversation is open with an `appContext` window message (a JSON string), sent on
// load and whenever the page posts `chatwoot-dashboard-app:fetch-info` to its parent.
// Messages from any origin but the integration's Chatwoot are ignored. The agent signs in
// once with their own Chatwoot access token (checked by the server, never stored); the
// server then remembers them with an HttpOnly cookie this script cannot read.
const body = document.body;
const chatwootOrigin = body.dataset.chatwootOrigin;
const api = body.dataset.api;
const $ = (id) => document.getElementById(id);
let ctx = null;
let signedIn = null;
let agent = null;
let call = null;
let timer = null;

const POPUP = 'popup,width=1100,height=760';

async function send(method, path, data) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { 'x-sightline-app': '1' },
  };
  if (data !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(data);
  }
  return fetch(api + path, init);
}

function stateOf(c) {
  if (!c) return 'none';
  if (c.status === 'ended') return 'ended';
  return c.customer_present ? 'in_call' : 'waiting';
}

function render() {
  if (!ctx) {
    body.dataset.state = 'loading';
    $('status').textContent = 'Waiting for Chatwoot…';
    return;
  }
  $('status').textContent = `Conversation #${ctx.conversation}`;
  $('signin').hidden = signedIn !== false;
  $('call').hidden = signedIn !== true;
  if (signedIn === false) {
    body.dataset.state = 'signed_out';
    return;
  }
  if (signedIn !== true) return;
  $('agent').textContent = agent ? `Signed in as ${agent.name}` : '';
  const s = stateOf(call);
  body.dataset.state = s;
  const live = s === 'waiting' || s === 'in_call';
  $('start').hidden = live;
  $('open').hidden = !live;
  $('copy').hidden = !live || !call.customer_url;
  $('end').hidden = !live;
  if (!live) $('link').hidden = true;
  $('state').textContent = {
    none: 'No video call in this conversation yet.',
    waiting: 'Call started: waiting for the customer to join.',
    in_call: 'The customer is in the call.',
    ended: 'The last call has ended.',
  }[s];
}

async function refresh() {
  if (!ctx) return;
  let r;
  try {
    r = await send('GET', `/call?conversation=${ctx.conversation}`);
  } catch {
    $('status').textContent = 'Sightline cannot be reached.';
    return;
  }
  if (r.status === 401) {
    signedIn = false;
    render();
    return;
  }
  if (!r.ok) {
    $('status').textContent = 'Sightline answered with an error.';
    return;
  }
  const j = await r.json();
  signedIn = true;
  agent = j.agent;
  call = j.call;
  render();
  if (!timer) timer = setInterval(refresh, 2000);
}

window.addEventListener('message', (ev) => {
  if (ev.origin !== chatwootOrigin) return;
  if (typeof ev.data !== 'string' || ev.data.length > 100000) return;
  let msg;
  try {
    msg = JSON.parse(ev.data);
  } catch {
    return;
  }
  if (!msg || msg.event !== 'appContext' || !msg.data || !msg.data.conversation) return;
  const id = Number(msg.data.conversation.id);
  if (!Number.isSafeInteger(id) || id <= 0) return;
  const changed = !ctx || ctx.conversation !== id;
  ctx = { conversation: id };
  body.dataset.conversation = String(id);
  if (changed) {
    call = null;
    render();
    refresh();
  }
});

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('signin-error').textContent = '';
  const token = $('token').value.trim();
  if (!token) return;
  let r;
  try {
    r = await send('POST', '/session', { token });
  } catch {
    $('signin-error').textContent = 'Sightline cannot be reached.';
    return;
  }
  $('token').value = '';
  if (r.ok) {
    refresh();
    return;
  }
  const p = await r.json().catch(() => ({}));
  $('signin-error').textContent =
    p.code === 'chatwoot_token_refused'
      ? 'Chatwoot did not accept this token. Copy it again from Profile settings → Access Token.'
      : p.detail || 'Signing in failed.';
});

$('start').addEventListener('click', async () => {
  $('call-error').textContent = '';
  // Opened now, in the click: a popup opened after an await is blocked. Chatwoot's
  // iframe may not use the camera, so the call runs in its own window.
  const w = window.open('about:blank', 'sightline-call', POPUP);
  $('start').disabled = true;
  try {
    const r = await send('POST', '/call', { conversation: ctx.conversation });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) {
      if (w) w.close();
      if (r.status === 401) signedIn = false;
      $('call-error').textContent = j.detail || 'The call could not be started.';
      render();
      return;
    }
    call = j.call;
    render();
    if (w && call.agent_url) w.location.href = call.agent_url;
  } finally {
    $('start').disabled = false;
  }
});

$('open').addEventListener('click', () => {
  if (call && call.agent_url) window.open(call.agent_url, 'sightline-call', POPUP);
});

$('copy').addEventListener('click', async () => {
  if (!call || !call.customer_url) return;
  try {
    await navigator.clipboard.writeText(call.customer_url);
    $('state').textContent = 'Customer link copied.';
  } catch {
    // Clipboard access may be denied inside the iframe: show the link to copy by hand.
    $('link').value = call.customer_url;
    $('link').hidden = false;
    $('link').select();
  }
});

$('end').addEventListener('click', async () => {
  const r = await send('POST', '/call/end', { conversation: ctx.conversation });
  const j = await r.json().catch(() => ({}));
  if (r.ok) {
    call = j.call;
    render();
  } else {
    $('call-error').textContent = j.detail || 'The call could not be ended.';
  }
});

render();
window.parent.postMessage('chatwoot-dashboard-app:fetch-info', chatwootOrigin || '*');
