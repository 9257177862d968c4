// Drives two headless Chromium processes (agent and customer) through a Sightline call and
// prints one JSON line with what it measured. Called by tests/browser_call.rs:
//   node tests/browser/call.mjs '{"agentUrl":…,"customerUrl":…,"artifacts":…,"scenario":"full"}'
// scenario: "call" (connect, check media), "full" (+ customer reload, agent ends),
// "bench" (agent waits; the customer opens the link `runs` times; time to first frame),
// "cluster" (call, then `endUrl` is posted with `apiKey`: both pages must end).
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2]);
const deadline = Date.now() + (args.timeoutMs || 90000);
const log = (...m) => console.error(`[call.mjs ${((Date.now() % 100000) / 1000).toFixed(3)}]`, ...m);

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

async function launch(name, viewport) {
  const dir = await mkdtemp(join(tmpdir(), `sightline-${name}-`));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: args.chromium || '/usr/bin/chromium', headless: true, args: flags, viewport,
    locale: 'en-US', timeout: 30000,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(name, 'console', m.text()); });
  page.on('pageerror', (e) => log(name, 'pageerror', e.message));
  return { name, ctx, page, dir };
}

const left = () => Math.max(1000, deadline - Date.now());

async function stats(page) {
  return page.evaluate(async () => {
    const pc = window.__sightline && window.__sightline.pc;
    if (!pc) return null;
    const gen = window.__sightline.pcGen; // read with pc, before awaiting
    const r = await pc.getStats();
    const out = { gen, videoFrames: 0, audioPackets: 0, local: null, remote: null, ice: pc.iceConnectionState };
    let pair = null;
    r.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = s.selectedCandidatePairId; });
    r.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.videoFrames += s.framesDecoded || 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
    });
    const p = pair && r.get(pair);
    if (p) {
      out.local = r.get(p.localCandidateId)?.candidateType ?? null;
      out.relayProtocol = r.get(p.localCandidateId)?.relayProtocol ?? null;
      out.remote = r.get(p.remoteCandidateId)?.candidateType ?? null;
    }
    return out;
  });
}

// Polls until media flows, then samples again to prove it keeps flowing.
async function mediaFlows(side, minGen = 1) {
  let first = null;
  while (Date.now() < deadline) {
    first = await stats(side.page);
    if (first && first.gen >= minGen && first.videoFrames > 0 && first.audioPackets > 0) break;
    await side.page.waitForTimeout(200);
  }
  await side.page.waitForTimeout(2000);
  const second = await stats(side.page);
  return { first, second };
}

// Clicks "join" from inside the page the moment it is enabled, like an instant human
// (Playwright's own click adds hundreds of milliseconds of automation latency here).
const instantJoin = (page) => page.evaluate(() => new Promise((resolve) => {
  const b = document.getElementById('join');
  const go = () => { b.click(); resolve(); };
  if (!b.disabled) return go();
  new MutationObserver((_, o) => { if (!b.disabled) { o.disconnect(); go(); } }).observe(b, { attributes: true });
}));

async function openAndJoin(side, url, name) {
  await side.page.goto(url, { timeout: left() });
  await side.page.waitForSelector('#join:not([disabled])', { timeout: left() });
  if (name) await side.page.fill('#name', name);
  await side.page.click('#join');
}

const firstFrame = (side) => side.page.waitForFunction(() => window.__sightline.firstFrameAt !== null, null, { timeout: left(), polling: 20 })
  .then(() => side.page.evaluate(() => ({ sinceOpen: window.__sightline.firstFrameAt, sinceJoin: window.__sightline.firstFrameAt - window.__sightline.joinedAt, marks: window.__sightline.marks, trail: window.__sightline.log.slice(-25) })));

const shot = (side, file) => side.page.screenshot({ path: join(args.artifacts, file) }).catch((e) => log('screenshot', e.message));

// The pages a customer sees when things are not right: an in-app webview, camera and
// microphone blocked, no devices, no WebRTC. One browser, a fresh page each.
async function guidance() {
  const side = await launch('guidance', { width: 390, height: 780 });
  const out = {};
  const visit = async (name, init, ua) => {
    const page = await side.ctx.newPage();
    if (init) await page.addInitScript(init);
    if (ua) await page.addInitScript(`Object.defineProperty(navigator, 'userAgent', { get: () => ${JSON.stringify(ua)} })`);
    await page.goto(args.customerUrl, { timeout: left(), waitUntil: 'commit' });
    await page.waitForFunction(() => ['blocked', 'prejoin'].includes(document.body.dataset.phase), null, { timeout: left() });
    await page.waitForTimeout(300);
    out[name] = await page.evaluate(() => ({
      phase: document.body.dataset.phase,
      title: document.getElementById('blocked-title').textContent,
      message: document.getElementById('device-msg').hidden ? '' : document.getElementById('device-msg').textContent,
      openBrowser: !document.getElementById('open-browser').hidden && document.getElementById('open-browser').getAttribute('href'),
      retry: !document.getElementById('retry').hidden,
      join: !document.getElementById('join').disabled,
    }));
    await page.screenshot({ path: join(args.artifacts, `guidance-${name}.png`) });
    await page.close();
  };
  try {
    await visit('webview', null, 'Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UD1A; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0 Mobile Safari/537.36 Instagram 330.0');
    const reject = (name) => `navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('test', '${name}'));`;
    await visit('denied', reject('NotAllowedError'));
    await visit('nodevice', reject('NotFoundError'));
    await visit('nowebrtc', 'delete window.RTCPeerConnection;');
  } finally {
    await side.ctx.close().catch(() => {});
    await rm(side.dir, { recursive: true, force: true }).catch(() => {});
  }
  return { scenario: 'guidance', pages: out };
}

// The demo agent desktop: Start video in the widget, the link appears in the pretend
// conversation, the customer opens it, both see each other, the host page hears about it,
// forged messages are ignored, the agent ends the call from the widget.
async function demo() {
  const [agent, customer] = await Promise.all([launch('agent', { width: 1400, height: 860 }), launch('customer', { width: 390, height: 780 })]);
  const out = { scenario: 'demo' };
  const hostEvents = () => agent.page.evaluate(() => window.sightlineDemoEvents.map((e) => e.name));
  const waitEvent = (name) => agent.page.waitForFunction((n) => window.sightlineDemoEvents.some((e) => e.name === n), name, { timeout: left(), polling: 50 });
  try {
    await agent.page.goto(args.demoUrl, { timeout: left() });
    const start = agent.page.locator('#sightline button.start');
    await start.waitFor({ timeout: left() });
    await shot(agent, 'demo-before.png');
    const clicked = Date.now();
    await start.click();
    const link = agent.page.locator('.msg[data-kind="link"] a.join-link');
    await link.waitFor({ timeout: left() });
    out.linkMs = Date.now() - clicked;
    out.customerUrl = await link.getAttribute('href');
    log('link in conversation after', out.linkMs, 'ms');
    // The agent's panel joins by itself once its devices are ready.
    const panel = await (async () => {
      while (Date.now() < deadline) {
        const f = agent.page.frames().find((fr) => fr.url().includes('/j/'));
        if (f) return f;
        await agent.page.waitForTimeout(100);
      }
      throw new Error('no call panel');
    })();
    await panel.waitForFunction(() => document.body.dataset.status === 'sWaiting', null, { timeout: left() });
    out.panelEmbedded = await panel.evaluate(() => window.__sightline.embedded);
    await openAndJoin(customer, out.customerUrl, 'Sam');
    await waitEvent('customer-joined');
    const [a, c] = await Promise.all([mediaFlows({ page: panel }), mediaFlows(customer)]);
    out.agent = a;
    out.customer = c;
    await waitEvent('connected');
    // Forged messages: an "ended" event from another origin to the host page, and an "end"
    // command from another origin to the panel. Both must be ignored.
    await agent.page.evaluate(() => {
      const iframe = document.getElementById('sightline').shadowRoot.querySelector('iframe');
      window.dispatchEvent(new MessageEvent('message', { data: { source: 'sightline', v: 1, type: 'event', event: 'ended' }, origin: 'https://evil.example', source: iframe.contentWindow }));
    });
    await panel.evaluate(() => {
      window.dispatchEvent(new MessageEvent('message', { data: { source: 'sightline', v: 1, type: 'command', command: 'end' }, origin: 'https://evil.example', source: window.parent }));
      window.dispatchEvent(new MessageEvent('message', { data: { source: 'sightline', v: 1, type: 'command', command: 'mute' }, origin: 'https://evil.example', source: window.parent }));
    });
    await agent.page.waitForTimeout(1500);
    out.afterForgery = {
      host: await hostEvents(),
      panelEnded: await panel.evaluate(() => window.__sightline.ended),
      panelAudio: await panel.evaluate(() => window.__sightline.audioOn),
      customerPhase: await customer.page.evaluate(() => document.body.dataset.phase),
      widgetStatus: await agent.page.evaluate(() => document.getElementById('sightline').shadowRoot.querySelector('.status').dataset.state),
    };
    // A real command through the widget API reaches the panel.
    await agent.page.evaluate(() => window.sightlineWidget.mute());
    await panel.waitForFunction(() => window.__sightline.audioOn === false, null, { timeout: left() });
    out.muteCommand = true;
    await shot(agent, 'demo-in-call.png');
    await shot(customer, 'demo-customer.png');
    await agent.page.locator('#sightline button.end').click();
    await waitEvent('ended');
    await customer.page.waitForSelector('body[data-phase="done"]', { timeout: left() });
    out.customerEnd = await customer.page.evaluate(() => document.body.dataset.end);
    out.hostEvents = await hostEvents();
    out.chat = await agent.page.evaluate(() => [...document.querySelectorAll('.msg.sys')].map((m) => m.textContent));
    await shot(agent, 'demo-ended.png');
  } finally {
    for (const side of [agent, customer]) {
      await side.ctx.close().catch(() => {});
      await rm(side.dir, { recursive: true, force: true }).catch(() => {});
    }
  }
  return out;
}

async function main() {
  await mkdir(args.artifacts, { recursive: true });
  if (args.scenario === 'guidance') return guidance();
  if (args.scenario === 'demo') return demo();
  const phone = { width: 390, height: 780 };
  const desktop = { width: 1280, height: 800 };
  const [agent, customer] = await Promise.all([launch('agent', desktop), launch('customer', phone)]);
  const result = { scenario: args.scenario };
  try {
    await openAndJoin(agent, args.agentUrl);
    await agent.page.waitForSelector('body[data-status="sWaiting"]', { timeout: left() });
    log('agent waiting');
    if (args.scenario === 'bench') {
      result.runs = [];
      for (let i = 0; i < (args.runs || 5); i++) {
        const page = i === 0 ? customer.page : await customer.ctx.newPage();
        const side = { ...customer, page };
        await page.goto(args.customerUrl, { timeout: left(), waitUntil: 'commit' });
        await instantJoin(page);
        const ff = await firstFrame(side);
        const agentFf = await firstFrame(agent);
        result.runs.push({ customer: ff, agentSinceCustomerJoin: agentFf });
        log('run', i, JSON.stringify(ff));
        // The customer hangs up, so the agent is waiting again (as in run 0) for the next.
        await page.click('#leave-btn');
        await agent.page.waitForSelector('body[data-status="sPeerLeft"]', { timeout: left() });
        await page.close();
        await agent.page.evaluate(() => { window.__sightline.firstFrameAt = null; });
      }
      return result;
    }
    await customer.page.goto(args.customerUrl, { timeout: left() });
    await customer.page.waitForSelector('#join:not([disabled])', { timeout: left() });
    await shot(customer, 'customer-prejoin.png');
    await shot(agent, 'agent-waiting.png');
    await customer.page.fill('#name', 'Sam from the test');
    await customer.page.click('#join');
    result.firstFrame = await firstFrame(customer);
    log('customer first frame', JSON.stringify(result.firstFrame));
    const [a, c] = await Promise.all([mediaFlows(agent), mediaFlows(customer)]);
    result.agent = a;
    result.customer = c;
    await Promise.all([shot(agent, `agent-${args.label}.png`), shot(customer, `customer-${args.label}.png`)]);
    if (args.scenario === 'cluster') {
      // The session is ended through another node's REST API: both pages end.
      const r = await fetch(args.endUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${args.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'done' }),
      });
      result.endStatus = r.status;
      await Promise.all([agent, customer].map((s) => s.page.waitForSelector('body[data-phase="done"][data-end="ended"]', { timeout: left() })));
      result.ended = true;
      return result;
    }
    if (args.scenario !== 'full') return result;

    // Media state travels: the customer mutes and turns the camera off; the agent sees it.
    await customer.page.click('#mic-btn');
    await customer.page.click('#cam-btn');
    await agent.page.waitForFunction(() => {
      const p = window.__sightline.peer;
      return p && p.media.audio === false && p.media.video === false && document.querySelector('#tiles .off:not([hidden])');
    }, null, { timeout: left() });
    result.mediaState = await customer.page.evaluate(() => ({
      micPressed: document.getElementById('mic-btn').getAttribute('aria-pressed'),
      camPressed: document.getElementById('cam-btn').getAttribute('aria-pressed'),
    }));
    await shot(agent, 'agent-peer-muted.png');
    await customer.page.click('#mic-btn');
    await customer.page.click('#cam-btn');
    await agent.page.waitForFunction(() => window.__sightline.peer.media.video === true, null, { timeout: left() });

    // A signaling blip: the customer's socket drops. The page reconnects and resumes;
    // the media path is untouched (same peer connection on both sides).
    const gens = [(await stats(agent.page)).gen, (await stats(customer.page)).gen];
    await customer.page.evaluate(() => window.__sightline.ws.close(4000, 'test blip'));
    await agent.page.waitForSelector('body[data-status="sPeerReconnecting"], body[data-status="sConnected"]', { timeout: left() });
    await customer.page.waitForFunction(() => window.__sightline.ws && window.__sightline.ws.readyState === 1 && window.__sightline.retries === 0, null, { timeout: left(), polling: 50 });
    // ...and an ICE restart (what the pages do when the network changes) keeps media flowing.
    await agent.page.evaluate(() => window.__sightline.pc.restartIce());
    const [a1, c1] = await Promise.all([mediaFlows(agent, gens[0]), mediaFlows(customer, gens[1])]);
    result.afterBlip = { agent: a1, customer: c1, gensBefore: gens };
    log('after blip', JSON.stringify(result.afterBlip));

    // The customer reloads: the call must come back by itself.
    const agentGen = (await stats(agent.page)).gen;
    await customer.page.reload({ timeout: left() });
    await customer.page.waitForSelector('#join:not([disabled])', { timeout: left() });
    await customer.page.click('#join');
    const [a2, c2] = await Promise.all([mediaFlows(agent, agentGen + 1), mediaFlows(customer)]);
    result.afterReload = { agent: a2, customer: c2 };
    log('after reload', JSON.stringify(result.afterReload));

    // The agent ends the session for everyone (the button asks for a second press).
    await agent.page.click('#end-btn');
    await agent.page.click('#end-btn');
    await Promise.all([agent, customer].map((s) => s.page.waitForSelector('body[data-phase="done"][data-end="ended"]', { timeout: left() })));
    result.ended = true;
    await Promise.all([shot(agent, 'agent-ended.png'), shot(customer, 'customer-ended.png')]);
    return result;
  } catch (e) {
    for (const s of [agent, customer]) {
      const trail = await s.page.evaluate(() => window.__sightline && window.__sightline.log).catch(() => null);
      log(s.name, 'trail:\n  ' + (trail || []).join('\n  '));
      await shot(s, `${s.name}-failure.png`);
    }
    throw e;
  } finally {
    for (const s of [agent, customer]) {
      await s.ctx.close().catch(() => {});
      await rm(s.dir, { recursive: true, force: true }).catch(() => {});
    }
  }
}

main().then(
  (r) => { console.log(JSON.stringify({ ok: true, ...r })); process.exit(0); },
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) })); process.exit(1); },
);
