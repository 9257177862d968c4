// Sightline join page: device check, then a mesh call (one RTCPeerConnection per peer) over a
// WebSocket (docs/signaling.md, protocol 2). Plain ES module, no build step.
import { t, translate } from './i18n.js';

const $ = (id) => document.getElementById(id);
const body = document.body;
const token = location.pathname.split('/').pop();
const instance = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
const FINAL = { 4403: 'removed', 4404: 'denied', 4409: 'replaced', 4410: 'ended', 4411: 'revoked', 4413: 'full', 4400: 'error', 1009: 'error' };
const on = (pc) => ['connected', 'completed'].includes(pc.iceConnectionState);

// All mutable state; tests read it as window.__sightline.
const S = {
  role: body.dataset.role, mode: null, me: null, stream: new MediaStream(), ws: null, cfg: null, connectP: null,
  peers: new Map(), spare: null, gen: 0, waiting: [], lobby: false,
  peerName: body.dataset.peer || t(body.dataset.role === 'agent' ? 'customer' : 'agent'),
  retries: 0, ended: false, facing: 'user', hd: false, lastHeard: 0,
  firstFrameAt: null, firstFrameWall: null, joinedAt: null, status: 'idle', audioOn: true, videoOn: true,
  log: [], marks: { module: Math.round(performance.now()) }, q: [],
};
// The first remote participant shown (what a 1:1 call calls "the peer").
const main = () => [...S.peers.values()].find((p) => shown(p) && pcOf(p));
// A participant's connection: its own, or the engine's in a routed call (routed.js).
const pcOf = (p) => p.pc || (S.rt && p.src && S.rt.pc) || null;
Object.defineProperties(S, {
  pc: { get: () => (main() && pcOf(main())) || null },
  pcGen: { get: () => main()?.gen || 0 },
  peer: { get: () => main()?.e || null },
});
window.__sightline = S;
const mark = (k) => { S.marks[k] = Math.round(performance.now()); };
const trail = (...m) => { S.log.push(`${Math.round(performance.now())} ${m.join(' ')}`); if (S.log.length > 300) S.log.shift(); };
const shown = (p) => !p.e.hidden && p.e.receive !== false;
const agent = () => S.role === 'agent';

// --- embedding (agent panel inside the widget; docs/embedding.md)

// Agent page framed by an allowed origin only: events to, commands from that parent.
const embed = (() => {
  if (body.dataset.role !== 'agent' || window.parent === window) return null;
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
  for (const s of ['blocked', 'prejoin', 'lobby', 'call', 'done']) $(s).hidden = s !== id;
  body.dataset.phase = id;
}

function setStatus(key, name = S.peerName) {
  S.status = key;
  body.dataset.status = key;
  $('status').textContent = t(key, { name });
  $('status').hidden = key === 'sConnected';
  if (key === 'sConnected') tell('connected');
}

function banner(text) {
  const b = $('banner');
  b.textContent = text;
  b.hidden = !text;
}

// --- pre-join

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
  const size = { width: { ideal: S.hd ? 1280 : 640 }, height: { ideal: S.hd ? 720 : 360 }, frameRate: { ideal: 30 } };
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

// --- signaling

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
  if (!/^(offer|answer|candidate|restart_ice|ping|media)$/.test(msg.type)) S.acted = Date.now();
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(msg));
}

const media = () => ({ audio: S.audioOn && S.stream.getAudioTracks().length > 0, video: S.videoOn && S.stream.getVideoTracks().length > 0 });

function useConfig(c) {
  S.cfg = c;
  if (c.participant) { S.role = c.participant.role || S.role; S.mode = c.participant.mode; }
  if (c.session && c.session.peer_name && !body.dataset.peer) S.peerName = c.session.peer_name;
}

async function connectWs() {
  if (S.ended) return;
  let c = null;
  try {
    const pre = S.connectP && await S.connectP;
    S.connectP = null;
    // Every (re)connection uses a fresh credential.
    c = pre && pre.until > Date.now() && !pre.used ? pre : await fetchConnect();
  } catch {
    return reconnectLater();
  }
  if (!c || S.ended) return;
  c.used = true;
  useConfig(c);
  mark('credential');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${c.ws_path}`);
  S.ws = ws;
  ws.onopen = () => {
    mark('wsOpen');
    S.lastHeard = Date.now();
    ws.send(JSON.stringify({ type: 'join', v: 2, credential: c.credential, instance, name: S.name || undefined, media: media() }));
  };
  ws.onmessage = (e) => {
    S.lastHeard = Date.now();
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    onSignal(m);
  };
  ws.onclose = (e) => {
    trail('ws close', e.code, e.reason);
    if (S.ws !== ws) return;
    S.ws = null;
    if (S.ended) return;
    if (e.code === 4403 && /denied/.test(e.reason)) return finish('denied');
    if (e.code === 4411 && S.transferred) return finish('transferred');
    if (e.code === 4406) return location.reload();
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
  if (m.type !== 'candidate' && m.type !== 'pong') trail('recv', m.type, m.sdp ? m.from : JSON.stringify(m).slice(0, 160));
  const p = m.from && S.peers.get(m.from);
  switch (m.type) {
    case 'joined': onJoined(m); break;
    case 'participant_joined': upsert(m.participant, true); break;
    case 'participant_updated': upsert(m.participant, false); break;
    case 'participant_left': gone(m.participant_id); break;
    case 'offer': case 'answer': if (p && (p.pc || !S.routed)) { if (!p.pc) newPc(p); onDescription(p, { type: m.type, sdp: m.sdp }); } break;
    case 'candidate': if (p && p.pc) p.pc.addIceCandidate(m.candidate).catch((e) => { if (!p.ignoreOffer) trail('candidate', e.message); }); break;
    case 'routed': case 'media_offer': routed(m); break;
    case 'restart_ice': if (p && p.pc) { p.restarting = true; p.pc.restartIce(); } break;
    case 'lobby': S.waiting = m.waiting || []; renderLobby(); break;
    case 'lobby_message': lobbyMessage(m.text); break;
    case 'ice_servers': S.cfg.ice_servers = m.ice_servers; iceServers(true); break;
    case 'declined': banner(t('declinedBanner', { name: m.name || t('customer'), reason: m.message || t({ busy: 'busy', not_now: 'notNow' }[m.reason] || 'otherReason') })); tell('customer-left'); break;
    case 'transferred': S.transferred = m.to; banner(t('transferredBanner', { name: m.to && m.to.name })); break;
    case 'ended': finish('ended'); break;
    // Only refusals of this page's own requests (not of candidates to someone gone).
    case 'error': trail('error', m.code, m.message); if (Date.now() - S.acted < 3000) banner(`${t('errorTitle')}: ${m.message || m.code}`); break;
    default: S.x ? S.x(m) : S.q.push(m); // incall.js
  }
}

// Routed calls: routed.js, loaded on the first `routed` or `media_offer`.
function routed(m) {
  if (m.type === 'routed') { S.routed = m.routed; mark(m.routed ? 'routed' : 'mesh'); }
  if (!S.routed && !S.rtP) return;
  S.rtP = S.rtP || import('./routed.js').then((x) => x.default({ S, send, trail, mark, tile, status, newPc, sync, rtcConfig }));
  S.rtP.then((f) => f(m));
}

function onJoined(m) {
  S.retries = 0;
  if (!!m.routed !== !!S.routed) routed({ type: 'routed', routed: !!m.routed });
  S.me = m.participant_id;
  S.role = m.role || S.role;
  S.mode = m.mode;
  controls();
  if (S.declining) return decline(S.declining);
  iceServers();
  if (m.lobby) {
    S.lobby = true;
    mark('lobby');
    showLobby(m.lobby_message);
    spare();
    return;
  }
  if (S.lobby) { S.lobby = false; mark('admitted'); }
  show('call');
  const ids = new Set(m.roster.map((e) => e.id));
  for (const [id] of S.peers) if (!ids.has(id)) drop(id);
  for (const e of m.roster) upsert(e, false, true);
  status();
}

// An entry came or changed. `fresh`: they just came (we offer); `newcomer`: we did (we wait 1.5 s).
function upsert(e, fresh, newcomer) {
  if (e.id === S.me) { S.mode = e.mode; controls(); return; }
  let p = S.peers.get(e.id);
  const prev = p && p.e;
  if (p && fresh && prev.instance !== e.instance) { drop(e.id); p = null; }
  if (!p) {
    p = { id: e.id, e, pc: null, gen: 0 };
    S.peers.set(e.id, p);
    if (e.role === 'customer') tell('customer-joined');
  }
  p.e = e;
  if (S.routed) {
    if (p.pc && prev && prev.instance !== e.instance) closePc(p);
    if (S.rt) S.rt.adopt(p);
  } else if (!p.pc || (prev && prev.instance !== e.instance)) {
    if (p.pc) closePc(p);
    newPc(p, fresh);
    if (newcomer) p.offerTimer = setTimeout(() => sync(p), 1500);
    else sync(p);
  } else if (prev && (prev.send.audio !== e.send.audio || prev.send.video !== e.send.video || fresh || newcomer)) {
    if (p.synced) sync(p);
    // Same page after a socket blip: keep the connection; nudge ICE if down.
    if ((fresh || newcomer) && p.synced && !on(p.pc)) restartIce(p);
  }
  tile(p);
  roster();
  status();
}

function gone(id) {
  const p = S.peers.get(id);
  if (!p) return;
  if (p.e.role === 'customer') tell('customer-left');
  drop(id);
  if (shown(p)) S.leftName = p.e.name;
  status();
}

function status() {
  if (S.lobby || body.dataset.phase !== 'call') return;
  const vis = [...S.peers.values()].filter(shown);
  const rc = vis.find((p) => p.e.state === 'reconnecting');
  if (rc) { tell('reconnecting'); return setStatus('sPeerReconnecting', rc.e.name); }
  if (vis.some((p) => pcOf(p) && on(pcOf(p)))) return setStatus('sConnected');
  if (vis.length) return setStatus('sConnecting');
  if (S.leftName !== undefined) return setStatus('sPeerLeft', S.leftName || S.peerName);
  setStatus('sWaiting');
}

// New TURN credentials; renewed ones (`restart`) re-allocate the relays.
function iceServers(restart) {
  for (const p of [{ pc: S.spare }, { pc: S.rt && S.rt.pc }, ...S.peers.values()]) {
    try { if (p.pc) p.pc.setConfiguration({ ...p.pc.getConfiguration(), iceServers: S.cfg.ice_servers }); } catch { /* keep the old */ }
    if (restart && p.e) restartIce(p, true);
  }
}

const rtcConfig = () => ({ iceServers: S.cfg.ice_servers, iceTransportPolicy: S.cfg.ice_transport_policy, bundlePolicy: 'max-bundle', iceCandidatePoolSize: 1 });

// A warm connection (certificate, TURN allocation) for whoever comes first.
function spare() {
  if (!S.spare && S.cfg && !S.ended) { S.spare = new RTCPeerConnection(rtcConfig()); }
}

// Agents prepare an offer on it for whoever waits in the lobby: admitting sends it at once.
function prep() {
  const pc = S.spare;
  if (!agent() || !pc || pc.held || S.stream.getTracks().length < 2) return;
  const h = pc.held = { c: [] };
  for (const tr of S.stream.getTracks()) pc.addTransceiver(tr, { streams: [S.stream] });
  pc.onicecandidate = ({ candidate }) => { if (candidate && candidate.candidate) h.c.push(candidate.toJSON()); };
  h.ready = pc.setLocalDescription();
}

function newPc(p, fresh) {
  const sp = S.spare && (fresh || !S.spare.held) ? S.spare : null;
  const pc = sp || new RTCPeerConnection(rtcConfig());
  if (sp) S.spare = null;
  const h = pc.held;
  p.pc = pc;
  p.gen = ++S.gen;
  p.makingOffer = p.ignoreOffer = p.answerPending = false;
  trail('new pc', p.id, p.gen, 'polite', p.e.polite);
  pc.onnegotiationneeded = async () => {
    if (pc.signalingState !== 'stable' || p.pc !== pc) return;
    try {
      p.makingOffer = true;
      await pc.setLocalDescription();
      if (p.pc === pc && pc.localDescription.type === 'offer') {
        send({ type: 'offer', to: p.id, sdp: pc.localDescription.sdp, restart: !!p.restarting });
        p.restarting = false;
        watchdog(p);
      }
    } catch (e) {
      trail('negotiation', e.message);
    } finally {
      p.makingOffer = false;
    }
  };
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate || !candidate.candidate || p.pc !== pc) return;
    if (h && !h.sent) h.c.push(candidate.toJSON());
    else send({ type: 'candidate', to: p.id, candidate: candidate.toJSON() });
  };
  if (h) h.ready.then(() => {
    h.sent = true;
    if (p.pc !== pc) return;
    trail('held offer', h.c.length);
    send({ type: 'offer', to: p.id, sdp: pc.localDescription.sdp, restart: false });
    for (const c of h.c) send({ type: 'candidate', to: p.id, candidate: c });
    watchdog(p);
  });
  pc.ontrack = ({ track, streams }) => {
    p.src = streams[0] || p.src || new MediaStream();
    if (!p.src.getTracks().includes(track)) p.src.addTrack(track);
    tile(p);
  };
  pc.oniceconnectionstatechange = () => onIceState(p, pc);
}

// Tracks follow the entry's `send`; where nothing is sent the transceiver only receives.
function sync(p) {
  clearTimeout(p.offerTimer);
  const pc = p.pc;
  if (!pc) return;
  p.synced = true;
  for (const kind of ['audio', 'video']) {
    const track = S.stream.getTracks().find((x) => x.kind === kind);
    const out = !!(p.e.send[kind] && track);
    let x = pc.getTransceivers().find((y) => y.receiver.track.kind === kind && !y.stopped && y.mid !== null)
      || pc.getTransceivers().find((y) => y.receiver.track.kind === kind && !y.stopped);
    if (!x) x = pc.addTransceiver(kind, { direction: 'recvonly', streams: [S.stream] });
    const dir = out ? 'sendrecv' : 'recvonly';
    if (x.direction !== dir) x.direction = dir;
    if ((x.sender.track || null) !== (out ? track : null)) x.sender.replaceTrack(out ? track : null).catch(() => {});
    if (out && x.sender.setStreams) x.sender.setStreams(S.stream);
  }
  tune();
}

// 640x360 (sooner first frame; a mesh sends per pair) until one receiver has been up 4 s.
function tune() {
  const list = [...S.peers.values()].filter((p) => p.pc && p.e.send.video);
  const track = S.stream.getVideoTracks()[0];
  const hd = list.length === 1 && !!list[0].up;
  if (!track || S.hd === hd) return;
  S.hd = hd;
  track.applyConstraints(videoConstraints(track.getSettings().deviceId)).catch((e) => trail('tune', e.message));
}

// A pair not up 6 s after negotiating gets an ICE restart.
function watchdog(p) {
  clearTimeout(p.iceTimer);
  p.iceTimer = setTimeout(() => restartIce(p), 6000);
}

// Perfect negotiation: the polite side yields when offers collide.
async function onDescription(p, desc) {
  const pc = p.pc;
  try {
    const ready = !p.makingOffer && (pc.signalingState === 'stable' || p.answerPending);
    p.ignoreOffer = !p.e.polite && desc.type === 'offer' && !ready;
    trail('description', p.id, desc.type, 'ignore', p.ignoreOffer, pc.signalingState);
    if (p.ignoreOffer) return;
    p.answerPending = desc.type === 'answer';
    await pc.setRemoteDescription(desc);
    p.answerPending = false;
    if (desc.type === 'offer') {
      sync(p);
      await pc.setLocalDescription();
      send({ type: 'answer', to: p.id, sdp: pc.localDescription.sdp });
      watchdog(p);
    }
  } catch (e) {
    trail('negotiation error', e.name, e.message);
  }
}

function onIceState(p, pc) {
  if (p.pc !== pc) return;
  const s = pc.iceConnectionState;
  trail('ice', p.id, s);
  if (on(pc)) {
    clearTimeout(p.iceTimer);
    p.iceTimer = null;
    if (!p.up) setTimeout(() => { p.up = true; tune(); }, 4000);
  } else if (s === 'disconnected') {
    if (!p.iceTimer) p.iceTimer = setTimeout(() => restartIce(p), 2500);
  } else if (s === 'failed') restartIce(p);
  status();
  if (!on(pc) && s !== 'new' && s !== 'checking' && shown(p)) setStatus('sMediaReconnecting');
}

function restartIce(p, force) {
  clearTimeout(p.iceTimer);
  p.iceTimer = null;
  const pc = p.pc;
  if (!pc || S.ended || (on(pc) && !force) || S.peers.get(p.id) !== p) return;
  trail('ice restart', p.id);
  // One side offers: the impolite one restarts, the polite one asks it to.
  if (p.e.polite) send({ type: 'restart_ice', to: p.id });
  else { p.restarting = true; pc.restartIce(); }
  p.iceTimer = setTimeout(() => { if (p.pc === pc && !on(pc)) restartIce(p); }, 10000);
}

function closePc(p) {
  clearTimeout(p.offerTimer);
  clearTimeout(p.iceTimer);
  if (p.pc) p.pc.close();
  p.pc = null;
  p.src = null;
}

function drop(id) {
  const p = S.peers.get(id);
  if (!p) return;
  closePc(p);
  S.peers.delete(id);
  if (p.tile) p.tile.remove();
  layout();
  roster();
  tune();
}

// --- tiles, roster, stats

const badge = (e) => t('r' + (e.role || 'customer').replace(/^./, (c) => c.toUpperCase()));

function tile(p) {
  if (!shown(p)) { if (p.tile) { p.tile.remove(); p.tile = null; layout(); } return; }
  if (!p.tile) {
    const d = document.createElement('div');
    d.className = 'tile';
    d.dataset.id = p.id;
    d.innerHTML = '<video autoplay playsinline></video><p class="off" hidden></p><p class="lbl"><span class="nm" dir="auto"></span> <span class="badge"></span> <span class="mt" hidden></span></p>';
    $('tiles').append(d);
    p.tile = d;
    const v = d.firstChild;
    const seen = () => {
      if (S.firstFrameAt === null) { S.firstFrameAt = performance.now(); S.firstFrameWall = Date.now(); mark('firstFrame'); }
    };
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(seen); else v.addEventListener('loadeddata', seen, { once: true });
    layout();
  }
  const d = p.tile, e = p.e, v = d.firstChild;
  if (p.src && v.srcObject !== p.src) v.srcObject = p.src;
  d.querySelector('.nm').textContent = e.name || '';
  d.querySelector('.badge').textContent = badge(e);
  d.querySelector('.badge').dataset.role = e.role;
  const mt = d.querySelector('.mt');
  mt.textContent = t('muted');
  mt.hidden = !e.media || e.media.audio;
  const off = d.querySelector('.off');
  off.textContent = t('peerCameraOff', { name: e.name || '' });
  off.hidden = !e.media || e.media.video || (e.role === 'supervisor' && e.mode !== 'barge');
}

function layout() { $('tiles').dataset.n = $('tiles').children.length; }

function roster() {
  const list = [...S.peers.values()].filter((p) => !p.e.hidden);
  $('people-btn').textContent = `${t('people')} (${list.length + 1})`;
  $('roster').replaceChildren(...list.map(({ e }) => {
    const li = document.createElement('li');
    li.textContent = `${e.name || ''} · ${badge(e)}${e.state === 'reconnecting' ? ' · …' : ''}`;
    if (e.role === 'supervisor' && agent()) li.append(modeSelect(e.mode, (mode) => send({ type: 'set_mode', participant_id: e.id, mode }), e.name));
    else if (e.mode) li.append(` · ${t(e.mode)}`);
    if (agent() && e.role !== 'customer') li.append(button(t('remove'), () => api('DELETE', `participants/${encodeURIComponent(e.id)}`).catch(() => {}), e.name));
    return li;
  }));
}

function button(text, onclick, label) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'btn';
  b.textContent = text;
  if (label) b.setAttribute('aria-label', `${text}: ${label}`);
  b.onclick = onclick;
  return b;
}

function modeSelect(value, change, label) {
  const s = document.createElement('select');
  s.setAttribute('aria-label', label ? `${t('mode')}: ${label}` : t('mode'));
  s.append(...['listen', 'whisper', 'barge'].map((m) => new Option(t(m), m)));
  s.value = value || 'listen';
  s.onchange = () => change(s.value);
  return s;
}

// Per remote participant: what the tests read, and who is speaking.
async function stats() {
  const out = {};
  await Promise.all([...S.peers.values()].filter(pcOf).map(async (p) => {
    const r = await pcOf(p).getStats();
    // Through the engine: only this participant's tracks.
    const ids = !p.pc && new Set(p.src.getTracks().map((x) => x.id));
    const o = { framesDecoded: 0, audioPacketsReceived: 0, audioLevel: 0, local: null, remote: null, gen: p.gen, role: p.e.role || null, hidden: !!p.e.hidden, routed: !p.pc };
    let pair = null;
    r.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = s.selectedCandidatePairId;
      if (s.type !== 'inbound-rtp' || (ids && !ids.has(s.trackIdentifier))) return;
      if (s.kind === 'video') o.framesDecoded += s.framesDecoded || 0;
      else { o.audioPacketsReceived += s.packetsReceived || 0; o.audioLevel = Math.max(o.audioLevel, s.audioLevel || 0); }
    });
    const c = pair && r.get(pair);
    if (c) { o.local = r.get(c.localCandidateId)?.candidateType ?? null; o.remote = r.get(c.remoteCandidateId)?.candidateType ?? null; }
    out[p.id] = o;
  }));
  return out;
}
window.sightline = { stats };

setInterval(async () => {
  if (body.dataset.phase !== 'call') return;
  const st = await stats();
  let best = null;
  for (const [id, o] of Object.entries(st)) if (o.audioLevel > 0.02 && (!best || o.audioLevel > st[best].audioLevel)) best = id;
  for (const p of S.peers.values()) if (p.tile) p.tile.classList.toggle('talk', p.id === best);
}, 600);

// --- agents: lobby, invite, transfer; supervisors: mode

async function api(method, path, json) {
  const r = await fetch(`/api/v1/join/${encodeURIComponent(token)}/${path}`, {
    method, credentials: 'omit', headers: json ? { 'content-type': 'application/json' } : {}, body: json ? JSON.stringify(json) : undefined,
  });
  const v = await r.json().catch(() => ({}));
  if (!r.ok) { banner(`${t('errorTitle')}: ${v.title || v.code || r.status}`); throw new Error(r.status); }
  return v;
}

function renderLobby() {
  $('waiting').replaceChildren(...S.waiting.map((w) => {
    const li = document.createElement('li');
    li.textContent = w.name || t('customer');
    li.append(button(t('admit'), () => send({ type: 'admit', participant_id: w.id }), w.name),
      button(t('deny'), () => send({ type: 'deny', participant_id: w.id }), w.name));
    return li;
  }));
  $('lobby-tools').hidden = !S.waiting.length;
  if (S.waiting.length && $('panel').hidden) togglePanel();
  if (S.waiting.length) { spare(); prep(); }
}

function linkOut(el, url) {
  el.replaceChildren(Object.assign(document.createElement('a'), { href: url, textContent: url, target: '_blank', rel: 'noreferrer' }),
    ' ', button(t('copyLink'), (ev) => navigator.clipboard && navigator.clipboard.writeText(url).then(() => { ev.target.textContent = t('copied'); })));
  el.hidden = false;
}

function controls() {
  const sup = S.role === 'supervisor';
  body.dataset.role = S.role;
  body.dataset.mode = S.mode || '';
  $('mode-field').hidden = !sup;
  if (sup && !$('mode').options.length) {
    const s = modeSelect(S.mode, (mode) => send({ type: 'set_mode', participant_id: S.me, mode }));
    $('mode').replaceWith(s);
    s.id = 'mode';
  } else if (sup) $('mode').value = S.mode || 'listen';
  $('tools').hidden = !agent();
  $('end-btn').hidden = !agent();
}

function togglePanel() {
  const p = $('panel');
  p.hidden = !p.hidden;
  $('people-btn').setAttribute('aria-expanded', String(!p.hidden));
}

function agentTools() {
  const form = (id, fn) => { $(id).onsubmit = (ev) => { ev.preventDefault(); fn().catch(() => {}); }; };
  form('lobby-form', async () => send({ type: 'lobby_message', text: $('lobby-input').value.slice(0, 200) }));
  form('invite-form', async () => {
    const email = $('inv-email').value.trim();
    const v = await api('POST', 'participants', { role: $('inv-role').value, name: $('inv-name').value.trim(), ...(email ? { email } : {}) });
    linkOut($('inv-out'), v.join_url);
  });
  form('transfer-form', async () => {
    const v = await api('POST', 'transfer', { agent: { id: $('tr-id').value.trim(), name: $('tr-name').value.trim() } });
    linkOut($('tr-out'), v.join_url);
  });
}

// --- customers: lobby and decline

function showLobby(msg) {
  show('lobby');
  $('lobby-text').textContent = t('lobbyText', { name: S.peerName });
  $('lobby-preview').srcObject = S.stream;
  $('lobby-row').append($('decline-btn'));
  $('lobby-row').after($('decline-box'));
  lobbyMessage(msg);
}

function lobbyMessage(text) {
  $('lobby-msg').textContent = text || '';
  $('lobby-msg').hidden = !text;
}

function decline(reason) {
  S.name = S.name || $('name').value.trim().slice(0, 80);
  if (S.ws && S.ws.readyState === WebSocket.OPEN && S.me) {
    send({ type: 'decline', reason });
    return finish('declined');
  }
  // Not connected yet: join only to say so.
  S.declining = reason;
  if (!S.ws) connectWs();
}

// --- in-call controls

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
  let s = await tryMedia({ video: { ...videoConstraints(), facingMode: { exact: next } } });
  if (s instanceof Error) {
    // Desktops: cycle through the cameras.
    const cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    const i = cams.findIndex((d) => old && d.deviceId === old.getSettings().deviceId);
    const pick = cams[(i + 1) % cams.length];
    if (!pick) return;
    s = await tryMedia({ video: videoConstraints(pick.deviceId) });
  }
  if (s instanceof Error) return;
  S.facing = s.getVideoTracks()[0].getSettings().facingMode || next;
  await setVideo(s);
  $('self').classList.toggle('mirror', S.facing !== 'environment');
}

async function setVideo(s) {
  const track = s.getVideoTracks()[0], old = S.stream.getVideoTracks()[0];
  track.enabled = S.videoOn;
  for (const p of [{ pc: S.rt && S.rt.pc }, ...S.peers.values()]) {
    const sender = p.pc && p.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
    if (sender) await sender.replaceTrack(track);
  }
  if (old) { S.stream.removeTrack(old); old.stop(); }
  S.stream.addTrack(track);
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
  removed: ['removedTitle', 'endedText'], denied: ['deniedLobbyTitle', 'endedText'], full: ['fullTitle', 'fullText', 'tryAgain'],
  declined: ['declinedTitle', 'declinedText'], transferred: ['transferredTitle', 'endedText'],
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
  for (const id of [...S.peers.keys()]) drop(id);
  if (S.rt) S.rt.close();
  if (S.spare) { S.spare.close(); S.spare = null; }
  for (const tr of S.stream.getTracks()) tr.stop();
  const [title, text, again] = DONE[why] || ['errorTitle', 'errorText'];
  $('done-title').textContent = t(title);
  $('done-text').textContent = t(text, { name: S.peerName });
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
  if (S.role === 'customer') S.name = $('name').value.trim().slice(0, 80);
  if (meterCtx) meterCtx.suspend();
  show('call');
  import('./incall.js').then((m) => m.default(S, send, t));
  $('self').srcObject = S.stream;
  $('self').hidden = S.stream.getVideoTracks().length === 0;
  setStatus('sConnecting');
  await connectWs();
}

// --- start

function start() {
  const vars = { name: S.peerName };
  translate(document, vars);
  document.title = t(body.dataset.peer ? 'title' : 'titleAlone', vars);
  $('pj-title').textContent = document.title;
  controls();
  $('name-field').hidden = S.role !== 'customer';
  $('decline-btn').hidden = S.role !== 'customer';
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
  $('people-btn').onclick = togglePanel;
  $('rejoin').onclick = () => location.reload();
  $('copy-link').onclick = () => navigator.clipboard.writeText(location.href).then(() => { $('copy-link').textContent = t('copied'); });
  $('try-anyway').onclick = prejoin;
  $('decline-btn').onclick = () => { $('decline-box').hidden = false; $('decline-btn').setAttribute('aria-expanded', 'true'); };
  for (const b of $('decline-box').querySelectorAll('button')) b.onclick = () => decline(b.dataset.reason);
  agentTools();
  roster();
  addEventListener('keydown', (e) => {
    if (body.dataset.phase !== 'call' || e.ctrlKey || e.metaKey || e.altKey || /INPUT|SELECT/.test(e.target.tagName)) return;
    if (e.key === 'm') toggleMic();
    if (e.key === 'v') toggleCam();
  });
  // Leaving: free the TURN allocations now (a per-participant quota).
  addEventListener('pagehide', () => { for (const p of S.peers.values()) closePc(p); if (S.rt) S.rt.close(); if (S.spare) S.spare.close(); if (S.ws) S.ws.close(1000); });
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
  // During the device check: fetch the credential, warm up a peer connection.
  S.connectP = fetchConnect().catch(() => null);
  S.connectP.then((c) => { if (c && !S.ended) { useConfig(c); controls(); $('decline-btn').hidden = S.role !== 'customer'; spare(); } });
  // Widget: the agent already pressed "Start video"; join when devices are ready.
  openDevices().then(() => { import('./precheck.js').then((m) => m.default(S)); if (embed && !$('join').disabled && body.dataset.phase === 'prejoin') join(); });
}

start();
