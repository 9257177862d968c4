// Drives three or four headless Chromium processes through a Sightline group call (mesh,
// protocol 2) and prints one JSON line with what it measured. Called by tests/browser_call.rs:
//   node tests/browser/group.mjs '{"scenario":…,"agentUrl":…,"customerUrl":…,"artifacts":…}'
// scenario: "invite" (the agent invites an expert from its page; all three see each other),
// "supervisor" (a listening, then whispering supervisor the customer never sees; then it
// barges in and goes back to listening),
// "lobby" (admit from the lobby, timed; `sessions` lists one agent/customer pair per run),
// "decline" (the customer declines; the agent sees why), "transfer" (to a second agent),
// "routed" (a session with media_mode auto: a listening supervisor switches the 1:1 call to
// the server's media engine without a break; then it whispers to the agent only; it leaves
// and the call stays routed), "routedTcp" (a routed 4-party call, the customer on TCP only).
// Every check that fails throws; the Rust test asserts on the returned figures as well.
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2]);
const deadline = Date.now() + (args.timeoutMs || 60000);
const t0 = Date.now();
const log = (...m) => console.error(`[group.mjs +${((Date.now() - t0) / 1000).toFixed(2)}s]`, ...m);
const left = () => Math.max(1000, deadline - Date.now());
const relay = args.relay !== false;

// Playwright passes its own --disable-features list; a second flag replaces it, so merge.
const disabled = ['AvoidUnnecessaryBeforeUnloadCheckSync', 'DestroyProfileOnBrowserClose', 'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable', 'LensOverlay', 'MediaRouter', 'PaintHolding', 'ThirdPartyStoragePartitioning',
  'AvoidCorsURLLoaderRestartOnRedirect', 'OptimizationHints', 'NetworkTimeServiceQuerying', 'AimEnabled',
  'PreconnectToSearch', 'WebRtcHideLocalIpsWithMdns'];
const flags = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
  `--disable-features=${disabled.join(',')}`,
  '--allow-loopback-in-peer-connection',
];
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2,
  userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36' };
const DESKTOP = { viewport: { width: 1280, height: 800 } };

const sides = [];
async function launch(name, opts = DESKTOP) {
  const dir = await mkdtemp(join(tmpdir(), `sightline-${name}-`));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: args.chromium || '/usr/bin/chromium', headless: true, args: flags, locale: 'en-US', timeout: 30000, ...opts,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') log(name, 'console', m.text()); });
  page.on('pageerror', (e) => log(name, 'pageerror', e.message));
  const side = { name, ctx, page, dir };
  sides.push(side);
  return side;
}

const shot = (side, file) => side.page.screenshot({ path: join(args.artifacts, file) }).catch((e) => log('screenshot', e.message));
const stats = (side) => side.page.evaluate(() => window.sightline.stats());
const wait = (side, fn, arg) => side.page.waitForFunction(fn, arg, { timeout: left(), polling: 50 });

// Opens a link and presses "join" from inside the page the moment it is enabled (an instant
// human; Playwright's own click adds hundreds of ms here). Resolves with the wall-clock click time.
async function openAndJoin(side, url, name) {
  await side.page.goto(url, { timeout: left() });
  if (name) await side.page.fill('#name', name);
  return side.page.evaluate(() => new Promise((resolve) => {
    const b = document.getElementById('join');
    const go = () => { b.click(); resolve(Date.now()); };
    if (!b.disabled) return go();
    new MutationObserver((_, o) => { if (!b.disabled) { o.disconnect(); go(); } }).observe(b, { attributes: true });
  }));
}

// Remote participants of a page, by role, as its stats hook reports them.
const byRole = (st, role) => Object.values(st).filter((o) => o.role === role);

// Polls until `want` (a list of roles whose video this page must decode) all decode, then
// samples again 2 s later: each must still be rising, through the relay when forced.
async function flows(side, want, { audio = true } = {}) {
  let first = null;
  while (Date.now() < deadline) {
    first = await stats(side);
    if (want.every((r) => byRole(first, r).some((o) => o.framesDecoded > 0 && (!audio || o.audioPacketsReceived > 0)))) break;
    await side.page.waitForTimeout(150);
  }
  await side.page.waitForTimeout(2000);
  const second = await stats(side);
  for (const r of want) {
    const [a] = byRole(first, r).filter((o) => o.framesDecoded > 0);
    const b = a && Object.values(second).find((o) => o.gen === a.gen && o.role === r);
    const ok = a && b && b.framesDecoded > a.framesDecoded && (!audio || b.audioPacketsReceived > a.audioPacketsReceived);
    if (!ok) throw new Error(`${side.name}: video from ${r} not flowing: ${JSON.stringify({ first, second })}`);
    // Under the relay-only policy every page has relay candidates only; a check that reaches
    // us before the trickled candidate (after an ICE restart) shows the other side's relay
    // address as peer-reflexive.
    if (relay && (b.local !== 'relay' || !['relay', 'prflx'].includes(b.remote))) throw new Error(`${side.name}: ${r} pair is ${b.local}/${b.remote}, not relay/relay`);
  }
  return { first, second };
}

// What a page shows: tiles (name, role), roster lines, text of the banner.
const view = (side) => side.page.evaluate(() => ({
  phase: document.body.dataset.phase,
  tiles: [...document.querySelectorAll('#tiles .lbl')].map((d) => `${d.querySelector('.nm').textContent} (${d.querySelector('.badge').textContent})`),
  roster: [...document.querySelectorAll('#roster li')].map((li) => li.textContent),
  banner: document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent,
  people: document.getElementById('people-btn').textContent,
  text: document.body.innerText,
}));

async function agentInvite(agent, role, name) {
  const p = agent.page;
  if (await p.locator('#panel').isHidden()) await p.click('#people-btn');
  await p.selectOption('#inv-role', role);
  await p.fill('#inv-name', name);
  await p.click('#invite-form button.primary');
  const a = p.locator('#inv-out a');
  await a.waitFor({ timeout: left() });
  const url = await a.getAttribute('href');
  await p.click('#people-btn');
  return url;
}

async function callOf(agent, customer) {
  await openAndJoin(agent, args.agentUrl);
  await agent.page.waitForSelector('body[data-status="sWaiting"]', { timeout: left() });
  await openAndJoin(customer, args.customerUrl, 'Sam');
  const [a, c] = await Promise.all([flows(agent, ['customer']), flows(customer, ['agent'])]);
  log('agent and customer in a call');
  return { agent: a, customer: c };
}

async function invite() {
  const [agent, customer, expert] = await Promise.all([launch('agent'), launch('customer', PHONE), launch('expert')]);
  const out = { two: await callOf(agent, customer) };
  const url = await agentInvite(agent, 'expert', 'Kim Expert');
  out.expertUrl = url;
  const clicked = await openAndJoin(expert, url);
  await wait(expert, () => window.__sightline.firstFrameWall !== null);
  out.expertFirstFrameMs = await expert.page.evaluate((c) => window.__sightline.firstFrameWall - c, clicked);
  log('expert: first remote frame', out.expertFirstFrameMs, 'ms after join');
  if (args.debug) for (const x of [expert, agent, customer]) log(x.name, (await x.page.evaluate(() => window.__sightline.log.slice(-14))).join('\n  '));
  const [a, c, e] = await Promise.all([flows(agent, ['customer', 'expert']), flows(customer, ['agent', 'expert']), flows(expert, ['agent', 'customer'])]);
  out.three = { agent: a, customer: c, expert: e };
  out.views = { agent: await view(agent), customer: await view(customer), expert: await view(expert) };
  await Promise.all([shot(customer, 'group-phone-3.png'), shot(agent, 'group-agent-3.png')]);
  // Renewed TURN credentials (the server's `ice_servers`, here replayed into two pages): each
  // pair restarts ICE under them and the media keeps flowing, relayed.
  const renew = () => window.__sightline.ws.onmessage({ data: JSON.stringify({ type: 'ice_servers', ice_servers: window.__sightline.cfg.ice_servers, expires_in: 60 }) });
  await Promise.all([customer.page.evaluate(renew), expert.page.evaluate(renew)]);
  await customer.page.waitForTimeout(1000);
  out.afterRenewal = { agent: await flows(agent, ['customer', 'expert']), customer: await flows(customer, ['agent', 'expert']) };
  out.restarts = await customer.page.evaluate(() => window.__sightline.log.filter((l) => l.includes('ice restart')).length);
  // The agent removes the expert from its roster: the expert's page stops, the others drop the tile.
  await agent.page.click('#people-btn');
  await agent.page.click('#roster li:has-text("Kim Expert") button');
  await expert.page.waitForSelector('body[data-phase="done"]', { timeout: left() });
  out.expertEnd = await expert.page.evaluate(() => document.body.dataset.end);
  await wait(customer, () => document.querySelectorAll('#tiles .tile').length === 1);
  out.afterRemove = { customer: await view(customer), agent: await view(agent) };
  return out;
}

async function supervisor() {
  const [agent, customer, sup] = await Promise.all([launch('agent'), launch('customer', PHONE), launch('supervisor')]);
  const out = { two: await callOf(agent, customer) };
  const url = await agentInvite(agent, 'supervisor', 'Sue Supervisor');
  await openAndJoin(sup, url);
  out.listen = { supervisor: await flows(sup, ['agent', 'customer']) };
  // The customer's page holds a connection to the supervisor (a hidden entry) and shows nothing.
  await customer.page.waitForTimeout(1500);
  out.listen.customerStats = await stats(customer);
  out.listen.customerView = await view(customer);
  out.listen.agentView = await view(agent);
  await shot(customer, 'group-phone-listening-supervisor.png');
  // The agent switches the supervisor to whisper from the roster.
  await agent.page.click('#people-btn');
  await agent.page.selectOption('#roster select', 'whisper');
  await agent.page.click('#people-btn');
  await wait(sup, () => document.body.dataset.mode === 'whisper');
  const supAudio = async (side) => Object.values(await stats(side)).filter((o) => o.role === 'supervisor' || o.hidden).map((o) => o.audioPacketsReceived);
  let a1 = null;
  while (Date.now() < deadline) {
    a1 = await supAudio(agent);
    if (a1[0] > 0) break;
    await agent.page.waitForTimeout(150);
  }
  const c1 = await supAudio(customer);
  await agent.page.waitForTimeout(2000);
  out.whisper = { agent: [a1, await supAudio(agent)], customer: [c1, await supAudio(customer)], customerView: await view(customer), supervisorStats: await stats(sup) };
  if (!(out.whisper.agent[1][0] > out.whisper.agent[0][0])) throw new Error(`agent does not hear the whisper: ${JSON.stringify(out.whisper)}`);
  // The supervisor barges in with its own switch: now everyone sees and hears it.
  await sup.page.selectOption('#mode', 'barge');
  out.barge = { customer: await flows(customer, ['agent', 'supervisor']), agent: await flows(agent, ['customer', 'supervisor']) };
  out.barge.customerView = await view(customer);
  await shot(customer, 'group-phone-barge.png');
  // Back to listening: the tile and roster entry leave the customer's page again, and the
  // customer stops receiving the supervisor's media.
  await sup.page.selectOption('#mode', 'listen');
  await wait(customer, () => ![...document.querySelectorAll('#tiles .lbl .nm')].some((n) => n.textContent.includes('Sue')));
  const heard = async () => Object.values(await stats(customer)).filter((o) => o.role === 'supervisor' || o.hidden)
    .reduce((n, o) => n + (o.audioPacketsReceived || 0) + (o.framesDecoded || 0), 0);
  // (Packets already in flight when the tile went may still land: settle first.)
  await customer.page.waitForTimeout(1000);
  const before = await heard();
  await customer.page.waitForTimeout(2000);
  out.relisten = { customerView: await view(customer), supervisorMode: await sup.page.evaluate(() => document.body.dataset.mode), received: [before, await heard()] };
  return out;
}

// Samples a page's decoded frames (per remote role) every 200 ms until stopped; `stop()`
// returns the longest time without any change of the count from `role`.
function sampler(side, role) {
  const samples = [];
  let on = true;
  const run = (async () => {
    while (on) {
      const st = await stats(side).catch(() => ({}));
      samples.push([Date.now(), byRole(st, role).reduce((n, o) => n + o.framesDecoded, 0)]);
      await side.page.waitForTimeout(200);
    }
  })();
  return async () => {
    on = false;
    await run;
    let gap = 0, last = samples[0][0];
    for (let i = 1; i < samples.length; i++) {
      if (samples[i][1] !== samples[i - 1][1]) { gap = Math.max(gap, samples[i][0] - last); last = samples[i][0]; }
    }
    return { samples: samples.length, maxGapMs: Math.max(gap, samples[samples.length - 1][0] - last) };
  };
}

async function routedCall() {
  const [agent, customer, sup] = await Promise.all([launch('agent'), launch('customer', PHONE), launch('supervisor')]);
  const out = { two: await callOf(agent, customer) };
  // The control: the longest gap between two frames shown on the tile over 3 s of the
  // peer-to-peer call, before any switch (what this machine's load alone costs).
  const steady = (side) => side.page.evaluate(() => new Promise((resolve) => {
    const v = document.querySelector('#tiles video');
    let last = 0, gap = 0;
    const end = performance.now() + 3000;
    const f = (now) => {
      if (last) gap = Math.max(gap, now - last);
      last = now;
      if (now < end) v.requestVideoFrameCallback(f); else resolve(Math.round(gap));
    };
    v.requestVideoFrameCallback(f);
  }));
  out.steadyGapMs = Object.fromEntries(await Promise.all([['agent', agent], ['customer', customer]].map(async ([k, x]) => [k, await steady(x)])));
  const stops = [sampler(agent, 'customer'), sampler(customer, 'agent')];
  const url = await agentInvite(agent, 'supervisor', 'Sue Supervisor');
  const at = Date.now();
  await openAndJoin(sup, url);
  // Both pages switch: every tile shows the engine's stream, no mesh connection is left.
  const switched = () => window.__sightline.routed && window.__sightline.marks.routedSwitch
    && [...window.__sightline.peers.values()].every((p) => !p.pc);
  await Promise.all([wait(agent, switched), wait(customer, switched)]);
  out.switchMs = Date.now() - at;
  out.switchedAt = Date.now();
  // Where the switch's time went on each page (ms after the page saw `routed`).
  const steps = (side) => side.page.evaluate(() => {
    const m = window.__sightline.marks;
    return Object.fromEntries(['routedOffer', 'routedAnswer', 'routedIce', 'routedDtls', 'routedDecoded', 'routedSwitch']
      .map((k) => [k, m[k] === undefined ? null : m[k] - m.routed]));
  });
  out.steps = { agent: await steps(agent), customer: await steps(customer) };
  log('switch steps', JSON.stringify(out.steps));
  log('agent and customer switched to the engine', out.switchMs, 'ms after the supervisor joined');
  out.listen = { supervisor: await flows(sup, ['agent', 'customer']) };
  // The page-side gap is measured until 3 s after the last switch.
  await agent.page.waitForTimeout(3500);
  const [a, c] = await Promise.all(stops.map((s) => s()));
  out.sampled = { agent: a, customer: c };
  out.gapMs = {
    agent: await agent.page.evaluate(() => window.__sightline.marks.routedGapMs ?? null),
    customer: await customer.page.evaluate(() => window.__sightline.marks.routedGapMs ?? null),
  };
  log('longest frame gap through the switch (page, sampled):', JSON.stringify(out.gapMs), a.maxGapMs, c.maxGapMs);
  out.listen.agent = await flows(agent, ['customer']);
  out.listen.customer = await flows(customer, ['agent']);
  const supId = await agent.page.evaluate(() => [...window.__sightline.peers.values()].find((p) => p.e.role === 'supervisor')?.id);
  out.supId = supId;
  out.listen.customerEngine = await customer.page.evaluate(async (id) => {
    const S = window.__sightline;
    const r = await S.rt.pc.getStats();
    const inbound = { video: 0, audio: 0 };
    r.forEach((s) => { if (s.type === 'inbound-rtp') inbound[s.kind] += 1; });
    const trace = JSON.stringify({ sdp: S.rt.pc.remoteDescription.sdp, peers: [...S.peers.keys()], log: S.log, text: document.body.innerText });
    return { inbound, meshPcs: [...S.peers.values()].filter((p) => p.pc).length, supTrace: !!id && trace.includes(id), sue: trace.includes('Sue') };
  }, supId);
  out.listen.customerView = await view(customer);
  await shot(customer, 'group-phone-routed.png');
  out.listen.agentView = await view(agent);
  // Whisper: the agent hears the supervisor through the engine, the customer does not.
  await sup.page.selectOption('#mode', 'whisper');
  await wait(sup, () => document.body.dataset.mode === 'whisper');
  const supAudio = async (side) => Object.values(await stats(side)).filter((o) => o.role === 'supervisor' || o.hidden).map((o) => o.audioPacketsReceived);
  let a1 = [];
  while (Date.now() < deadline) {
    a1 = await supAudio(agent);
    if (a1[0] > 0) break;
    await agent.page.waitForTimeout(150);
  }
  const c1 = await supAudio(customer);
  await agent.page.waitForTimeout(2000);
  out.whisper = { agent: [a1, await supAudio(agent)], customer: [c1, await supAudio(customer)], customerView: await view(customer) };
  if (!(out.whisper.agent[1][0] > out.whisper.agent[0][0])) throw new Error(`agent does not hear the whisper: ${JSON.stringify(out.whisper)}`);
  // The supervisor leaves: the call stays routed (no second switch) and keeps flowing.
  await sup.page.click('#leave-btn');
  await wait(agent, () => ![...window.__sightline.peers.values()].some((p) => p.e.role === 'supervisor'));
  const after = () => window.__sightline.routed && !!window.__sightline.rt.pc && [...window.__sightline.peers.values()].every((p) => !p.pc);
  out.afterLeave = {
    routed: { agent: await agent.page.evaluate(after), customer: await customer.page.evaluate(after) },
    agent: await flows(agent, ['customer']),
    customer: await flows(customer, ['agent']),
    agentView: await view(agent),
  };
  // Quality reports from the engine connection (every 5 s; the first after the switch
  // has no earlier sample to take a bitrate from): let two more go out.
  const reported = () => window.__sightline.lastStats && window.__sightline.lastStats.bitrate > 0;
  await Promise.all([wait(agent, reported), wait(customer, reported)]);
  out.reportsUntil = Date.now();
  out.ids = { agent: await agent.page.evaluate(() => window.__sightline.me), customer: await customer.page.evaluate(() => window.__sightline.me) };
  return out;
}

// A routed 4-party call (session media_mode "routed": agent, customer, expert and a
// listening supervisor) where the customer's network lets only TCP out: that page may use
// only the TURN server's TCP address and relayed candidates, so it reaches the engine
// through TURN over TCP. Every page decodes every other visible one.
async function routedTcp() {
  const [agent, customer, expert, sup] = await Promise.all([launch('agent'), launch('customer', PHONE), launch('expert'), launch('supervisor')]);
  await customer.ctx.addInitScript(() => {
    const tcpOnly = (c = {}) => ({
      ...c, iceTransportPolicy: 'relay',
      iceServers: (c.iceServers || []).map((x) => ({ ...x, urls: [].concat(x.urls).filter((u) => /^turn:.*transport=tcp/.test(u)) })).filter((x) => x.urls.length),
    });
    const Pc = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Pc {
      constructor(c, ...rest) { super(tcpOnly(c), ...rest); }
      setConfiguration(c) { return super.setConfiguration(tcpOnly(c)); }
    };
  });
  await openAndJoin(agent, args.agentUrl);
  await agent.page.waitForSelector('body[data-status="sWaiting"]', { timeout: left() });
  await openAndJoin(customer, args.customerUrl, 'Sam');
  await openAndJoin(expert, args.expertUrl);
  await openAndJoin(sup, args.supervisorUrl);
  const out = {};
  const [a, c, e, s] = await Promise.all([
    flows(agent, ['customer', 'expert']), flows(customer, ['agent', 'expert']),
    flows(expert, ['agent', 'customer']), flows(sup, ['agent', 'customer', 'expert']),
  ]);
  out.flows = { agent: a, customer: c, expert: e, supervisor: s };
  const pair = (side) => side.page.evaluate(async () => {
    const S = window.__sightline;
    const r = await S.rt.pc.getStats();
    let p = null;
    r.forEach((x) => { if (x.type === 'transport' && x.selectedCandidatePairId) p = r.get(x.selectedCandidatePairId); });
    const l = p && r.get(p.localCandidateId), rm = p && r.get(p.remoteCandidateId);
    const servers = S.rt.pc.getConfiguration().iceServers.flatMap((x) => [].concat(x.urls));
    return {
      routed: S.routed, meshPcs: [...S.peers.values()].filter((x) => x.pc).length, servers,
      local: l?.candidateType ?? null, relayProtocol: l?.relayProtocol ?? null,
      remote: rm?.candidateType ?? null, remotePort: rm?.port ?? null,
    };
  });
  out.pairs = { agent: await pair(agent), customer: await pair(customer), expert: await pair(expert), supervisor: await pair(sup) };
  out.customerView = await view(customer);
  await shot(customer, 'group-phone-routed-tcp.png');
  return out;
}

// Admit → first remote frame on the customer's page, per run on a fresh session.
async function lobby() {
  const [agent, customer] = await Promise.all([launch('agent'), launch('customer', PHONE)]);
  const out = { runs: [] };
  for (const [i, s] of args.sessions.entries()) {
    await openAndJoin(agent, s.agentUrl);
    await agent.page.waitForSelector('body[data-status="sWaiting"]', { timeout: left() });
    await openAndJoin(customer, s.customerUrl, 'Sam');
    await customer.page.waitForSelector('body[data-phase="lobby"]', { timeout: left() });
    // The agent sees who waits; a message for the lobby reaches the customer.
    await agent.page.waitForSelector('#waiting li button', { timeout: left() });
    if (i === 0) {
      await agent.page.fill('#lobby-input', 'Ana is finishing a note, one moment please');
      await agent.page.click('#lobby-form button');
      await customer.page.waitForSelector('#lobby-msg:not([hidden])', { timeout: left() }).catch(() => log('lobby message did not arrive'));
      out.lobbyView = await customer.page.evaluate(() => document.getElementById('lobby').innerText);
      await Promise.all([shot(customer, 'group-phone-lobby.png'), shot(agent, 'group-agent-lobby.png')]);
    }
    // Let the prepared connections settle (TURN allocations), as a waiting customer would.
    await customer.page.waitForTimeout(1000);
    const admit = await agent.page.evaluate(() => { document.querySelector('#waiting li button').click(); return Date.now(); });
    await wait(customer, () => window.__sightline.firstFrameWall !== null);
    const r = await customer.page.evaluate((a) => ({ ms: window.__sightline.firstFrameWall - a, marks: window.__sightline.marks, trail: window.__sightline.log.slice(-30) }), admit);
    if (args.debug) r.agentTrail = await agent.page.evaluate(() => window.__sightline.log.slice(-30));
    r.agentMs = await agent.page.waitForFunction(() => window.__sightline.firstFrameWall, null, { timeout: left(), polling: 20 }).then((h) => h.jsonValue()).then((w) => w - admit);
    log('run', i, 'admit → first frame', r.ms, 'ms (agent', r.agentMs, 'ms)');
    out.runs.push(r);
    if (i === 0) out.flows = { agent: await flows(agent, ['customer']), customer: await flows(customer, ['agent']) };
    await customer.page.goto('about:blank');
    await agent.page.goto('about:blank');
  }
  if (args.denySession) {
    // Turned away from the lobby: the customer's page stops with "not let in".
    const s = args.denySession;
    await openAndJoin(agent, s.agentUrl);
    await agent.page.waitForSelector('body[data-status="sWaiting"]', { timeout: left() });
    await openAndJoin(customer, s.customerUrl, 'Sam');
    await customer.page.waitForSelector('body[data-phase="lobby"]', { timeout: left() });
    await agent.page.click('#waiting li button:nth-of-type(2)');
    await customer.page.waitForSelector('body[data-phase="done"]', { timeout: left() });
    await wait(agent, () => !document.querySelector('#waiting li')).catch(() => {});
    out.denied = { end: await customer.page.evaluate(() => document.body.dataset.end), agentWaiting: await agent.page.evaluate(() => document.querySelectorAll('#waiting li').length) };
  }
  return out;
}

async function decline() {
  const [agent, customer] = await Promise.all([launch('agent'), launch('customer', PHONE)]);
  await openAndJoin(agent, args.agentUrl);
  await agent.page.waitForSelector('body[data-status="sWaiting"]', { timeout: left() });
  await customer.page.goto(args.customerUrl, { timeout: left() });
  await customer.page.click('#decline-btn');
  await shot(customer, 'group-phone-decline.png');
  const at = Date.now();
  await customer.page.click('#decline-box button[data-reason="not_now"]');
  await customer.page.waitForSelector('body[data-phase="done"]', { timeout: left() });
  await agent.page.waitForSelector('#banner:not([hidden])', { timeout: left() });
  const agentBannerMs = Date.now() - at;
  // The banner stays (nothing that follows, such as refused candidates, replaces it).
  await agent.page.waitForTimeout(1000);
  const out = { agentBannerMs, agent: await view(agent), customer: await view(customer), customerEnd: await customer.page.evaluate(() => document.body.dataset.end) };
  await shot(agent, 'group-agent-declined.png');
  return out;
}

async function transfer() {
  const [agent, customer, agent2] = await Promise.all([launch('agent'), launch('customer', PHONE), launch('agent2')]);
  const out = { two: await callOf(agent, customer) };
  // The customer's frames are sampled all along: from some remote they must keep rising.
  const samples = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const st = await stats(customer).catch(() => ({}));
      samples.push({ at: Date.now(), frames: Object.fromEntries(Object.entries(st).map(([id, o]) => [id, o.framesDecoded])) });
      await customer.page.waitForTimeout(500);
    }
  })();
  await agent.page.click('#people-btn');
  await agent.page.fill('#tr-id', 'agent-2');
  await agent.page.fill('#tr-name', 'Bo Second');
  await agent.page.click('#transfer-form button');
  const link = agent.page.locator('#tr-out a');
  await link.waitFor({ timeout: left() });
  out.link = await link.getAttribute('href');
  await openAndJoin(agent2, out.link);
  await agent.page.waitForSelector('#banner:not([hidden])', { timeout: left() });
  out.firstAgentBanner = (await view(agent)).banner;
  out.agent2 = await flows(agent2, ['customer']);
  await agent.page.waitForSelector('body[data-phase="done"]', { timeout: left() });
  out.firstAgentEnd = await agent.page.evaluate(() => document.body.dataset.end);
  log('first agent taken out:', out.firstAgentEnd);
  out.customerAfter = await flows(customer, ['agent']);
  out.customerView = await view(customer);
  sampling = false;
  await sampler;
  // Between any two samples at least one remote's frame count rose.
  out.stalls = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1].frames, b = samples[i].frames;
    if (!Object.keys(b).some((id) => (b[id] || 0) > (a[id] || 0))) out.stalls.push([samples[i - 1], samples[i]]);
  }
  out.samples = samples.length;
  if (out.stalls.length) throw new Error(`the customer's frames stalled: ${JSON.stringify(out.stalls)}`);
  return out;
}

async function main() {
  await mkdir(args.artifacts, { recursive: true });
  const run = { invite, supervisor, lobby, decline, transfer, routed: routedCall, routedTcp }[args.scenario];
  try {
    return { scenario: args.scenario, ...(await run()) };
  } catch (e) {
    for (const s of sides) {
      const trail = await s.page.evaluate(() => window.__sightline && window.__sightline.log).catch(() => null);
      log(s.name, 'trail:\n  ' + (trail || []).join('\n  '));
      await shot(s, `group-${s.name}-failure.png`);
    }
    throw e;
  } finally {
    await Promise.all(sides.map(async (s) => {
      await s.ctx.close().catch(() => {});
      await rm(s.dir, { recursive: true, force: true }).catch(() => {});
    }));
  }
}

main().then(
  (r) => { console.log(JSON.stringify({ ok: true, ms: Date.now() - t0, ...r })); process.exit(0); },
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) })); process.exit(1); },
);
