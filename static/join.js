// Sightline join page: device check, then a 1:1 WebRTC call signalled over a WebSocket
// (protocol: docs/signaling.md). Plain ES module, no framework, no build step.
import { t, translate } from './i18n.js';

const $ = (id) => document.getElementById(id);
const body = document.body;
const role = body.dataset.role;
const token = location.pathname.split('/').pop();
const instance = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
const FINAL = { 4410: 'ended', 4411: 'revoked', 4409: 'replaced' };

// Everything mutable lives here; the tests read it through window.__sightline.
const S = {
  stream: new MediaStream(), pc: null, ws: null, cfg: null, connectP: null,
  polite: role === 'customer', makingOffer: false, ignoreOffer: false, answerPending: false,
  peer: null, peerName: body.dataset.peer || t(role === 'agent' ? 'customer' : 'agent'),
  retries: 0, ended: false, facing: 'user', iceTimer: null, lastHeard: 0,
  firstFrameAt: null, joinedAt: null, status: 'idle', audioOn: true, videoOn: true,
};
window.__sightline = S;
// A short event trail for diagnosing a call (read by the tests, never sent anywhere).
S.log = [];
S.marks = { module: Math.round(performance.now()) };
const mark = (k) => { S.marks[k] = Math.round(performance.now()); };
const trail = (...m) => { S.log.push(`${Math.round(performance.now())} ${m.join(' ')}`); if (S.log.length > 200) S.log.shift(); };

// ---------- embedding (agent panel inside the widget; docs/embedding.md) ----------

// Active only for the agent's page framed by an allowed origin (the server lists them,
// and its CSP frame-ancestors says the same). Events go to that origin only; commands are
// taken only from the parent window at that origin.
const embed = (() => {
  if (role !== 'agent' || window.parent === window) return null;
  let allowed = [];
  try { allowed = JSON.parse(body.dataset.embedOrigins || '[]'); } catch { return null; }
  const parent = new URLSearchParams(location.search).get('parent') || '';
  if (!allowed.includes(parent)) return null;
  const last = {};
  const post = (event, data) => {
    if (last.event === event && event !== 'ready') return;
    last.event = event;
    window.parent.postMessage({ source: 'sightline', v: 1, type: 'event', event, data: data || {} }, parent);
  };
  addEventListener('message', (ev) => {
    const m = ev.data;
    if (ev.source !== window.parent || ev.origin !== parent) return;
    if (!m || m.source !== 'sightline' || m.v !== 1 || m.type !== 'command') return;
    if (m.command === 'end') send({ type: 'end' });
    else if (m.command === 'mute' && S.audioOn) toggleMic();
    else if (m.command === 'unmute' && !S.audioOn) toggleMic();
  });
  return { post };
})();
S.embedded = !!embed;
const tell = (event, data) => { if (embed) embed.post(event, data); };

function show(id) {
  for (const s of ['blocked', 'prejoin', 'call', 'done']) $(s).hidden = s !== id;
  body.dataset.phase = id;
}

function setStatus(key) {
  S.status = key;
  body.dataset.status = key;
  $('status').textContent = t(key, { name: S.peerName });
  $('status').hidden = key === 'sConnected';
  if (key === 'sConnected') tell('connected');
}

// ---------- pre-join ----------

function inAppBrowser(ua) {
  return /FBAN|FBAV|FB_IAB|Instagram|Line\/|MicroMessenger|Snapchat|TikTok|musical_ly|LinkedInApp|; wv\)/i.test(ua);
}

function blocked(titleKey, textKey, webview) {
  show('blocked');
  $('blocked-title').textContent = t(titleKey);
  $('blocked-text').textContent = t(textKey);
  $('copy-link').hidden = !navigator.clipboard;
  if (!webview) return;
  const android = /Android/i.test(navigator.userAgent);
  const open = $('open-browser');
  open.href = android
    ? `intent://${location.host}${location.pathname}#Intent;scheme=${location.protocol.slice(0, -1)};S.browser_fallback_url=${encodeURIComponent(location.href)};end`
    : `x-safari-${location.href}`;
  open.hidden = false;
  if (!android) $('blocked-text').textContent += ' ' + t('webviewIos');
  $('try-anyway').hidden = false;
}

function deviceMessage(err) {
  const name = err && err.name;
  const key = name === 'NotAllowedError' || name === 'SecurityError' ? 'deniedText'
    : name === 'NotFoundError' || name === 'OverconstrainedError' ? 'noDeviceText'
    : name === 'NotReadableError' || name === 'AbortError' ? 'busyText' : 'otherDeviceText';
  const m = $('device-msg');
  m.textContent = (key === 'deniedText' ? t('deniedTitle') + '. ' : '') + t(key);
  m.hidden = false;
  $('retry').hidden = key === 'noDeviceText';
}

async function tryMedia(c) {
  try { return await navigator.mediaDevices.getUserMedia(c); } catch (e) { return e; }
}

function videoConstraints(deviceId) {
  const size = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  return deviceId ? { ...size, deviceId: { exact: deviceId } } : { ...size, facingMode: S.facing };
}

async function openDevices() {
  for (const tr of S.stream.getTracks()) tr.stop();
  $('device-msg').hidden = true;
  $('retry').hidden = true;
  const cam = $('cam').value, mic = $('mic').value;
  const audio = mic ? { deviceId: { exact: mic }, echoCancellation: true, noiseSuppression: true } : { echoCancellation: true, noiseSuppression: true };
  let got = await tryMedia({ audio, video: videoConstraints(cam) });
  if (got instanceof Error) {
    const first = got;
    if (first.name !== 'NotAllowedError') {
      // One device may be missing or busy: keep whichever works.
      got = await tryMedia({ audio });
      if (got instanceof Error) got = await tryMedia({ video: videoConstraints(cam) });
    }
    deviceMessage(first);
    if (got instanceof Error) got = new MediaStream();
  }
  S.stream = got;
  mark('media');
  $('preview').srcObject = got;
  $('preview-off').hidden = got.getVideoTracks().length > 0;
  await listDevices();
  meter();
  $('join').disabled = false;
  mark('ready');
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  const fill = (sel, kind, track, label) => {
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    sel.replaceChildren(...list.map((d, i) => new Option(d.label || `${label} ${i + 1}`, d.deviceId)));
    const current = track && track.getSettings().deviceId;
    if (current) sel.value = current;
    sel.disabled = list.length < 2;
  };
  fill($('cam'), 'videoinput', S.stream.getVideoTracks()[0], t('camera'));
  fill($('mic'), 'audioinput', S.stream.getAudioTracks()[0], t('microphone'));
  $('flip-btn').hidden = devices.filter((d) => d.kind === 'videoinput').length < 2;
}

let meterCtx = null, meterRaf = 0;
function meter() {
  cancelAnimationFrame(meterRaf);
  const track = S.stream.getAudioTracks()[0];
  if (!track || !window.AudioContext) return;
  meterCtx = meterCtx || new AudioContext();
  const src = meterCtx.createMediaStreamSource(new MediaStream([track]));
  const an = meterCtx.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  const step = () => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    $('level').value = Math.min(1, Math.sqrt(sum / buf.length) * 5);
    if (body.dataset.phase === 'prejoin') meterRaf = requestAnimationFrame(step);
  };
  step();
}

// ---------- signaling ----------

async function fetchConnect() {
  const r = await fetch(`/api/v1/join/${encodeURIComponent(token)}/connect`, { method: 'POST', cache: 'no-store', credentials: 'omit' });
  if (r.status === 404 || r.status === 410) {
    const p = await r.json().catch(() => ({}));
    finish({ session_ended: 'ended', link_revoked: 'revoked', link_expired: 'expired' }[p.code] || 'invalid');
    return null;
  }
  if (!r.ok) throw new Error(`connect: HTTP ${r.status}`);
  const c = await r.json();
  c.until = Date.now() + (c.expires_in - 5) * 1000;
  return c;
}

function send(msg) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(msg));
}

const media = () => ({ audio: S.audioOn && S.stream.getAudioTracks().length > 0, video: S.videoOn && S.stream.getVideoTracks().length > 0 });

async function connectWs() {
  if (S.ended) return;
  let c = null;
  try {
    const pre = S.connectP && await S.connectP;
    S.connectP = null;
    c = pre && pre.until > Date.now() ? pre : await fetchConnect();
  } catch {
    return reconnectLater();
  }
  if (!c || S.ended) return;
  S.cfg = c;
  mark('credential');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${c.ws_path}`);
  S.ws = ws;
  ws.onopen = () => {
    mark('wsOpen');
    S.lastHeard = Date.now();
    ws.send(JSON.stringify({ type: 'join', v: c.protocol, credential: c.credential, instance, name: S.name || undefined, media: media() }));
  };
  ws.onmessage = (e) => {
    S.lastHeard = Date.now();
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    onSignal(m);
  };
  ws.onclose = (e) => {
    trail('ws close', e.code);
    if (S.ws !== ws) return;
    S.ws = null;
    if (S.ended) return;
    if (FINAL[e.code]) return finish(FINAL[e.code]);
    reconnectLater();
  };
}

function reconnectLater() {
  if (S.ended) return;
  setStatus('sReconnecting');
  const delay = Math.min(5000, 300 * 2 ** S.retries) + Math.random() * 300;
  S.retries = Math.min(S.retries + 1, 6);
  clearTimeout(S.reconnectTimer);
  S.reconnectTimer = setTimeout(connectWs, delay);
}

// Keep the socket honest: a silent network drop shows up as missing pongs.
setInterval(() => {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - S.lastHeard > 25000) return S.ws.close(4000, 'no pong');
  send({ type: 'ping' });
}, 10000);
addEventListener('online', () => { if (!S.ws && !S.ended && S.joinedAt) { S.retries = 0; connectWs(); } });

function onSignal(m) {
  if (m.type !== 'candidate' && m.type !== 'pong') trail('recv', m.type, m.type === 'offer' || m.type === 'answer' ? '' : JSON.stringify(m).slice(0, 120));
  switch (m.type) {
    case 'joined':
      S.retries = 0;
      S.polite = m.polite;
      if (S.pc && S.cfg) {
        try { S.pc.setConfiguration({ ...S.pc.getConfiguration(), iceServers: S.cfg.ice_servers }); } catch { /* keep the old servers */ }
      }
      if (m.peer) { tell('customer-joined'); onPeer(m.peer, true); } else {
        // Prepare the offer now; it goes out the moment someone joins.
        if (!S.pc || (S.pc.attached && !S.held)) newPc(true);
        else attachTracks(S.pc);
        setStatus('sWaiting');
      }
      break;
    case 'peer_joined': tell('customer-joined'); onPeer(m.peer, false); break;
    case 'peer_reconnecting': tell('reconnecting'); setStatus('sPeerReconnecting'); break;
    case 'peer_left': tell('customer-left'); S.peer = null; newPc(true); remoteOff(); setStatus('sPeerLeft'); break;
    case 'offer':
      if (!S.pc && S.peer) newPc(false);
      onDescription({ type: 'offer', sdp: m.sdp });
      break;
    case 'answer': onDescription({ type: 'answer', sdp: m.sdp }); break;
    case 'candidate': if (S.pc) S.pc.addIceCandidate(m.candidate).catch((e) => { if (!S.ignoreOffer) console.warn('candidate', e); }); break;
    case 'restart_ice': if (S.pc) S.pc.restartIce(); break;
    case 'peer_media': if (S.peer) { S.peer.media = { audio: m.audio, video: m.video }; peerMedia(); } break;
    case 'ended': finish('ended'); break;
    case 'error': console.warn('signaling error', m.code, m.message); break;
  }
}

// The side already in the room offers; the newcomer answers. That avoids colliding offers
// on every join (perfect negotiation still settles any that happen later).
function onPeer(peer, newcomer) {
  const same = S.pc && S.peer && S.peer.instance === peer.instance;
  S.peer = peer;
  S.peerName = peer.name || S.peerName;
  peerMedia();
  if (same) {
    // Our socket or theirs blipped; the media path may be fine. Nudge it if not.
    if (!['connected', 'completed'].includes(S.pc.iceConnectionState)) restartIce(S.pc);
    else setStatus('sConnected');
    return;
  }
  setStatus('sConnecting');
  clearTimeout(S.offerTimer);
  if (!newcomer) {
    // Send the offer prepared while waiting, or make one on the warmed-up connection.
    if (S.held && S.pc && S.pc.signalingState === 'have-local-offer') flushHeld();
    else if (S.pc && !S.pc.attached && S.pc.signalingState === 'stable') attachTracks(S.pc);
    else newPc(true);
    return;
  }
  if (!S.pc || S.pc.attached || S.pc.signalingState !== 'stable') newPc(false);
  // No offer soon (the other side is on an old page version or lost it)? Offer ourselves.
  const pc = S.pc;
  S.offerTimer = setTimeout(() => { if (S.pc === pc) attachTracks(pc); }, 1500);
}

// A connection starts "warm": no tracks yet, but a candidate pool, so TURN allocations are
// ready by the time there is someone to call. attachTracks() makes it negotiate.
function newPc(attach) {
  dropPc();
  const pc = new RTCPeerConnection({ iceServers: S.cfg.ice_servers, iceTransportPolicy: S.cfg.ice_transport_policy, bundlePolicy: 'max-bundle', iceCandidatePoolSize: 1 });
  S.pc = pc;
  S.pcGen = (S.pcGen || 0) + 1;
  trail('new pc', S.pcGen, 'polite', S.polite);
  S.makingOffer = S.ignoreOffer = S.answerPending = false;
  pc.onnegotiationneeded = async () => {
    // Answering is onDescription's job; Chrome fires this again once stable if needed.
    if (pc.signalingState !== 'stable') return;
    try {
      S.makingOffer = true;
      await pc.setLocalDescription();
      if (pc === S.pc) sendDescription(pc.localDescription);
    } catch (e) {
      console.warn('negotiation', e);
    } finally {
      S.makingOffer = false;
    }
  };
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate || !candidate.candidate || pc !== S.pc) return;
    if (S.held) S.held.cands.push(candidate.toJSON());
    else send({ type: 'candidate', candidate: candidate.toJSON() });
  };
  pc.ontrack = ({ track, streams }) => {
    const v = $('remote');
    const s = streams[0] || new MediaStream([track]);
    if (v.srcObject !== s) v.srcObject = s;
    watchFirstFrame(v);
  };
  pc.oniceconnectionstatechange = () => onIceState(pc);
  if (attach) attachTracks(pc);
}

function attachTracks(pc) {
  if (pc.attached) return;
  pc.attached = true;
  trail('attach tracks');
  // After an offer arrived, addTrack reuses its transceivers; else it creates them.
  for (const tr of S.stream.getTracks()) pc.addTrack(tr, S.stream);
  const kinds = pc.getTransceivers().map((x) => x.receiver.track.kind);
  if (!kinds.includes('audio')) pc.addTransceiver('audio', { direction: 'recvonly' });
  if (!kinds.includes('video')) pc.addTransceiver('video', { direction: 'recvonly' });
  if (S.peer) watchdog(pc);
}

// Whatever got lost on the way (a candidate, an offer), a call that is not up after a few
// seconds gets an ICE restart.
function watchdog(pc) {
  clearTimeout(S.iceTimer);
  S.iceTimer = setTimeout(() => restartIce(pc), 6000);
}

function flushHeld() {
  const h = S.held;
  S.held = null;
  trail('send held offer', h.cands.length);
  send({ type: 'offer', sdp: h.sdp, restart: false });
  for (const c of h.cands) send({ type: 'candidate', candidate: c });
  watchdog(S.pc);
}

function sendDescription(d) {
  if (d.type === 'offer' && !S.peer) {
    // Nobody to send it to yet: keep it (and its candidates) for whoever joins.
    S.held = { sdp: d.sdp, cands: [] };
    trail('hold offer');
    return;
  }
  trail('send', d.type);
  send(d.type === 'offer' ? { type: 'offer', sdp: d.sdp, restart: !!S.restarting } : { type: 'answer', sdp: d.sdp });
  S.restarting = false;
}

// Perfect negotiation: the polite side yields when offers collide.
async function onDescription(desc) {
  const pc = S.pc;
  if (!pc) return;
  try {
    const ready = !S.makingOffer && (pc.signalingState === 'stable' || S.answerPending);
    S.ignoreOffer = !S.polite && desc.type === 'offer' && !ready;
    trail('description', desc.type, 'ready', ready, 'ignore', S.ignoreOffer, pc.signalingState);
    if (S.ignoreOffer) return;
    S.answerPending = desc.type === 'answer';
    await pc.setRemoteDescription(desc);
    S.answerPending = false;
    if (desc.type === 'offer') {
      attachTracks(pc);
      await pc.setLocalDescription();
      sendDescription(pc.localDescription);
    }
  } catch (e) {
    trail('negotiation error', e.name, e.message);
  }
}

function onIceState(pc) {
  if (pc !== S.pc) return;
  const s = pc.iceConnectionState;
  trail('ice', s);
  if (s === 'connected' || s === 'completed') {
    clearTimeout(S.iceTimer);
    S.iceTimer = null;
    setStatus('sConnected');
  } else if (s === 'disconnected') {
    setStatus('sMediaReconnecting');
    if (!S.iceTimer) S.iceTimer = setTimeout(() => restartIce(pc), 2500);
  } else if (s === 'failed') {
    setStatus('sMediaReconnecting');
    restartIce(pc);
  }
}

function restartIce(pc) {
  clearTimeout(S.iceTimer);
  S.iceTimer = null;
  if (pc !== S.pc || S.ended || ['connected', 'completed'].includes(pc.iceConnectionState)) return;
  trail('ice restart');
  // One side offers: the impolite one restarts, the polite one asks it to.
  if (S.polite) send({ type: 'restart_ice' });
  else { S.restarting = true; pc.restartIce(); }
  // Still not connected in a while? Try again.
  S.iceTimer = setTimeout(() => {
    if (pc === S.pc && !['connected', 'completed'].includes(pc.iceConnectionState)) restartIce(pc);
  }, 10000);
}

function dropPc() {
  S.held = null;
  clearTimeout(S.offerTimer);
  clearTimeout(S.iceTimer);
  S.iceTimer = null;
  if (S.pc) { S.pc.close(); S.pc = null; }
  $('remote').srcObject = null;
}

function watchFirstFrame(v) {
  const seen = () => {
    if (S.firstFrameAt === null) { S.firstFrameAt = performance.now(); mark('firstFrame'); }
    peerMedia();
  };
  if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(seen);
  else v.addEventListener('loadeddata', seen, { once: true });
}

function remoteOff() {
  const off = $('remote-off');
  off.textContent = S.peer ? t('peerCameraOff', { name: S.peerName }) : '';
  off.hidden = !S.peer;
}

function peerMedia() {
  const m = S.peer && S.peer.media;
  if (m && !m.video) remoteOff(); else $('remote-off').hidden = true;
  if (m && !m.audio && S.status === 'sConnected') {
    $('status').textContent = t('sPeerMuted', { name: S.peerName });
    $('status').hidden = false;
  } else if (S.status === 'sConnected') $('status').hidden = true;
}

// ---------- in-call controls ----------

function setToggle(btn, on, onKey, offKey) {
  btn.setAttribute('aria-pressed', String(!on));
  btn.textContent = t(on ? onKey : offKey);
}

function toggleMic() {
  S.audioOn = !S.audioOn;
  for (const tr of S.stream.getAudioTracks()) tr.enabled = S.audioOn;
  setToggle($('mic-btn'), S.audioOn, 'mute', 'unmute');
  send({ type: 'media', ...media() });
}

function toggleCam() {
  S.videoOn = !S.videoOn;
  for (const tr of S.stream.getVideoTracks()) tr.enabled = S.videoOn;
  setToggle($('cam-btn'), S.videoOn, 'cameraOff', 'cameraOn');
  $('self').hidden = !S.videoOn;
  send({ type: 'media', ...media() });
}

async function flipCamera() {
  const old = S.stream.getVideoTracks()[0];
  const next = S.facing === 'user' ? 'environment' : 'user';
  let s = await tryMedia({ video: { facingMode: { exact: next } } });
  if (s instanceof Error) {
    // Desktops have no facing modes: cycle through the cameras instead.
    const cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    const i = cams.findIndex((d) => old && d.deviceId === old.getSettings().deviceId);
    const pick = cams[(i + 1) % cams.length];
    if (!pick) return;
    s = await tryMedia({ video: videoConstraints(pick.deviceId) });
    if (s instanceof Error) return;
  }
  const track = s.getVideoTracks()[0];
  track.enabled = S.videoOn;
  S.facing = track.getSettings().facingMode || next;
  const sender = S.pc && S.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
  if (sender) await sender.replaceTrack(track);
  if (old) { S.stream.removeTrack(old); old.stop(); }
  S.stream.addTrack(track);
  $('self').classList.toggle('mirror', S.facing !== 'environment');
}

function leave() {
  send({ type: 'hang_up' });
  finish('left');
}

let endArmed = 0;
function endForAll() {
  const b = $('end-btn');
  if (Date.now() - endArmed > 4000) {
    endArmed = Date.now();
    b.textContent = t('confirmEnd');
    setTimeout(() => { b.textContent = t('endForAll'); }, 4000);
    return;
  }
  send({ type: 'end' });
}

const DONE = {
  ended: ['endedTitle', 'endedText'], left: ['leftTitle', 'leftText', 'rejoin'],
  replaced: ['replacedTitle', 'replacedText', 'useHere'], revoked: ['revokedTitle', 'revokedText'],
  expired: ['expiredTitle', 'expiredText'], invalid: ['invalidTitle', 'invalidText'],
};

function finish(why) {
  if (S.ended) return;
  S.ended = true;
  tell(why === 'left' ? 'left' : 'ended', { reason: why });
  body.dataset.end = why;
  clearTimeout(S.reconnectTimer);
  const ws = S.ws;
  S.ws = null;
  if (ws) ws.close(1000);
  dropPc();
  for (const tr of S.stream.getTracks()) tr.stop();
  const [title, text, again] = DONE[why] || ['errorTitle', 'errorText'];
  $('done-title').textContent = t(title);
  $('done-text').textContent = t(text);
  const b = $('rejoin');
  b.hidden = !again;
  if (again) b.textContent = t(again);
  show('done');
  $('done-title').tabIndex = -1;
  $('done-title').focus();
}

async function join() {
  $('join').disabled = true;
  S.joinedAt = performance.now();
  mark('join');
  if (role === 'customer') S.name = $('name').value.trim().slice(0, 80);
  if (meterCtx) meterCtx.suspend();
  show('call');
  $('self').srcObject = S.stream;
  $('self').hidden = S.stream.getVideoTracks().length === 0;
  setStatus('sConnecting');
  $('remote').focus();
  await connectWs();
}

// ---------- start ----------

function start() {
  const vars = { name: S.peerName };
  translate(document, vars);
  document.title = t(body.dataset.peer ? 'title' : 'titleAlone', vars);
  $('pj-title').textContent = document.title;
  $('end-btn').hidden = role !== 'agent';
  $('name-field').hidden = role !== 'customer';
  $('name').value = body.dataset.name || '';
  $('join').onclick = join;
  $('retry').onclick = openDevices;
  $('cam').onchange = openDevices;
  $('mic').onchange = openDevices;
  $('mic-btn').onclick = toggleMic;
  $('cam-btn').onclick = toggleCam;
  $('flip-btn').onclick = flipCamera;
  $('leave-btn').onclick = leave;
  $('end-btn').onclick = endForAll;
  $('rejoin').onclick = () => location.reload();
  $('copy-link').onclick = () => navigator.clipboard.writeText(location.href).then(() => { $('copy-link').textContent = t('copied'); });
  $('try-anyway').onclick = prejoin;
  addEventListener('keydown', (e) => {
    if (body.dataset.phase !== 'call' || e.ctrlKey || e.metaKey || e.altKey || /INPUT|SELECT/.test(e.target.tagName)) return;
    if (e.key === 'm') toggleMic();
    if (e.key === 'v') toggleCam();
  });
  // Leaving the page: close the connection so the TURN allocation is released now,
  // not when it expires (allocations count against a per-participant quota).
  addEventListener('pagehide', () => { dropPc(); if (S.ws) S.ws.close(1000); });
  addEventListener('pointerdown', () => meterCtx && body.dataset.phase === 'prejoin' && meterCtx.resume(), { once: true });

  if (!window.RTCPeerConnection || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return blocked('noWebrtcTitle', window.isSecureContext === false ? 'insecureText' : 'noWebrtcText', inAppBrowser(navigator.userAgent));
  }
  if (inAppBrowser(navigator.userAgent)) return blocked('webviewTitle', 'webviewText', true);
  prejoin();
  tell('ready');
}

function prejoin() {
  show('prejoin');
  // Fetch the credential while the user looks at the preview, so joining is instant.
  S.connectP = fetchConnect().catch(() => null);
  // ...and warm up a peer connection (certificate, TURN allocation) with it.
  S.connectP.then((c) => { if (c && !S.pc && !S.ended) { S.cfg = c; newPc(false); } });
  // Inside the widget the agent already pressed "Start video": join as soon as devices are ready.
  openDevices().then(() => { if (embed && !$('join').disabled && body.dataset.phase === 'prejoin') join(); });
}

start();
