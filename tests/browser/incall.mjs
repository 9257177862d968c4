// In-call features between two headless Chromium pages (agent desktop, customer phone):
// chat both ways (links as safe anchors, markup as text), and "show me" photos taken on the
// customer's page arriving on the agent's. Prints one JSON line. Called by
// tests/browser_call.rs:
//   node tests/browser/incall.mjs '{"agentUrl":…,"customerUrl":…,"artifacts":…,"photos":5}'
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2]);
const deadline = Date.now() + (args.timeoutMs || 90000);
const log = (...m) => console.error(`[incall.mjs ${((Date.now() % 100000) / 1000).toFixed(3)}]`, ...m);
const left = () => Math.max(1000, deadline - Date.now());

// As in call.mjs: Playwright's own --disable-features list, merged.
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
  // getDisplayMedia without a picker: the page's own tab.
  '--auto-accept-this-tab-capture', '--auto-select-desktop-capture-source=Entire screen',
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

const shot = (side, file) => side.page.screenshot({ path: join(args.artifacts, file) }).catch((e) => log('screenshot', e.message));

async function openAndJoin(side, url, name) {
  await side.page.goto(url, { timeout: left() });
  await side.page.waitForSelector('#join:not([disabled])', { timeout: left() });
  if (name) await side.page.fill('#name', name);
  await side.page.click('#join');
}

// Sends a chat message from inside the page (no automation latency); returns the wall time.
const say = (side, text) => side.page.evaluate((text) => {
  const i = document.getElementById('chat-input');
  i.value = text;
  const at = Date.now();
  document.getElementById('chat-form').requestSubmit();
  return at;
}, text);

const received = (side, needle) => side.page.waitForFunction(
  (needle) => (window.__sightline.chats || []).find((c) => c.text.includes(needle)),
  needle, { timeout: left(), polling: 10 },
).then((h) => h.jsonValue());

async function chat(agent, customer) {
  const out = {};
  await customer.page.click('#chat-btn');
  out.chatButtonExpanded = await customer.page.getAttribute('#chat-btn', 'aria-expanded');
  // Keyboard: the text area is labelled and Enter sends.
  out.inputLabel = await customer.page.evaluate(() => document.querySelector('label[for="chat-input"]')?.textContent);
  await customer.page.focus('#chat-input');
  await customer.page.keyboard.type('Hello, see https://example.com/manual?p=2. Thanks');
  await customer.page.keyboard.press('Enter');
  const got = await received(agent, 'Hello, see');
  out.agentGot = got.text;
  out.agentLink = await agent.page.evaluate(() => {
    const a = [...document.querySelectorAll('#chat-log a')].pop();
    return a && { href: a.href, text: a.textContent, rel: a.rel, target: a.target };
  });
  await agent.page.click('#chat-btn');
  await say(agent, 'Hi <b>Sam</b> <img src=x onerror=alert(1)> javascript:alert(1)');
  await received(customer, 'Hi <b>Sam</b>');
  out.customerSawMarkupAsText = await customer.page.evaluate(() => {
    const li = [...document.querySelectorAll('#chat-log li')].pop();
    return { text: li.querySelector('.text').textContent, elements: li.querySelectorAll('.text *').length };
  });
  // Round trips: customer → agent, 5 messages.
  out.oneWay = [];
  out.echo = [];
  for (let i = 0; i < 5; i++) {
    const at = await say(customer, `ping ${i}`);
    const [a, c] = await Promise.all([received(agent, `ping ${i}`), received(customer, `ping ${i}`)]);
    out.oneWay.push(a.wall - at);
    out.echo.push(c.wall - at);
  }
  await Promise.all([shot(agent, 'agent-chat.png'), shot(customer, 'customer-chat.png')]);
  out.agentEntries = await agent.page.evaluate(() => document.querySelectorAll('#chat-log li').length);
  // A reload shows the chat so far (from the server), once each.
  await agent.page.reload({ timeout: left() });
  await agent.page.waitForSelector('#join:not([disabled])', { timeout: left() });
  await agent.page.click('#join');
  await agent.page.waitForFunction(() => document.querySelectorAll('#chat-log li').length >= 7, null, { timeout: left() });
  await agent.page.waitForSelector('body[data-status="sConnected"]', { timeout: left() });
  out.afterReload = await agent.page.evaluate(() => [...document.querySelectorAll('#chat-log li .text')].map((e) => e.textContent));
  return out;
}

// "Show me": the agent asks, the customer's page (an instant human, clicking each button
// the moment it shows) takes and sends the photo; timed until the agent's page shows it.
async function photos(agent, customer, runs) {
  await customer.page.evaluate(() => setInterval(() => {
    for (const id of ['snap-take', 'snap-send']) {
      const b = document.getElementById(id);
      if (b && !b.hidden && !b.disabled && document.activeElement === b) b.click();
    }
  }, 10));
  const out = { runs: [] };
  for (let i = 0; i < runs; i++) {
    await agent.page.waitForSelector('#photo-btn:not([disabled])', { timeout: left() });
    await agent.page.evaluate(() => document.getElementById('photo-btn').click());
    const shown = await agent.page.waitForFunction((i) => {
      const p = window.__sightline.photos[i];
      return p && p.shownAt && p;
    }, i, { timeout: left(), polling: 10 }).then((h) => h.jsonValue());
    out.runs.push(shown.shownAt - shown.askedAt);
    if (i === 0) await Promise.all([shot(agent, 'agent-photo.png'), customer.page.waitForTimeout(10)]);
    await customer.page.waitForFunction(() => !document.getElementById('photo-dialog'), null, { timeout: left() });
  }
  // What the agent's page shows hashes to what the message announced (and the API serves).
  out.shown = await agent.page.evaluate(async () => {
    const img = document.querySelector('#photo-list figure img');
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
    const last = window.__sightline.photos.at(-1);
    return { id: last.id, announced: last.sha256, computed: hash, width: img.naturalWidth, alt: img.alt, kind: last.kind };
  });
  // The customer's camera goes back to the front once the last photo is sent.
  out.customerFacing = await customer.page.waitForFunction(() => window.__sightline.facing === 'user' && window.__sightline.facing, null, { timeout: 5000, polling: 50 })
    .then((h) => h.jsonValue(), () => customer.page.evaluate(() => window.__sightline.facing));
  out.via = await customer.page.evaluate(() => window.__sightline.photoVia);
  // The agent captures a frame of the customer's video.
  await agent.page.click('#frame-btn');
  out.frame = await agent.page.waitForFunction((n) => {
    const p = window.__sightline.photos[n];
    return p && p.shownAt && p;
  }, runs, { timeout: left() }).then((h) => h.jsonValue());
  return out;
}

async function main() {
  await mkdir(args.artifacts, { recursive: true });
  const [agent, customer] = await Promise.all([
    launch('agent', { width: 1280, height: 800 }), launch('customer', { width: 390, height: 780 })]);
  const result = {};
  try {
    await openAndJoin(agent, args.agentUrl);
    await agent.page.waitForSelector('#chat-btn', { timeout: left() });
    // The customer opens the link; the agent sees the pre-call check before they join.
    const opened = Date.now();
    await customer.page.goto(args.customerUrl, { timeout: left() });
    result.precheck = await agent.page.waitForFunction(
      () => Object.values(window.__sightline.prechecks || {})[0], null, { timeout: left(), polling: 20 },
    ).then((h) => h.jsonValue());
    result.precheck.sinceOpen = Date.now() - opened;
    result.precheck.customerPhase = await customer.page.evaluate(() => document.body.dataset.phase);
    result.precheck.shown = await agent.page.evaluate(() => document.getElementById('precheck').textContent);
    await shot(agent, 'agent-precheck.png');
    await customer.page.waitForSelector('#join:not([disabled])', { timeout: left() });
    await customer.page.fill('#name', 'Sam');
    await customer.page.click('#join');
    await Promise.all([agent, customer].map((s) => s.page.waitForSelector('body[data-status="sConnected"]', { timeout: left() })));
    await Promise.all([agent, customer].map((s) => s.page.waitForSelector('#chat-btn', { timeout: left() })));
    log('connected');
    result.chat = await chat(agent, customer);
    log('chat', JSON.stringify(result.chat));
    // Quality: the customer's page reports every 5 s; the agent's tile shows a level.
    result.quality = await agent.page.waitForFunction(() => {
      const q = Object.values(window.__sightline.quality || {})[0];
      const net = document.querySelector('#tiles .net');
      return q && net && { level: q.level, label: net.getAttribute('aria-label') };
    }, null, { timeout: left() }).then((h) => h.jsonValue());
    result.customerStats = await customer.page.evaluate(() => window.__sightline.lastStats);
    if (args.photos) {
      result.photos = await photos(agent, customer, args.photos);
      log('photos', JSON.stringify(result.photos));
    }
    // The agent shares the screen; the customer's page shows it large, then not.
    await agent.page.click('#screen-btn');
    result.screen = await customer.page.waitForFunction(() => {
      const v = document.getElementById('screen-view');
      return !v.hidden && v.videoWidth > 0 && { from: window.__sightline.screenFrom, label: v.getAttribute('aria-label'), width: v.videoWidth, tileKeepsCamera: document.querySelector('#tiles video').srcObject !== v.srcObject };
    }, null, { timeout: left() }).then((h) => h.jsonValue());
    await shot(customer, 'customer-screen.png');
    result.screen.pressed = await agent.page.getAttribute('#screen-btn', 'aria-pressed');
    await agent.page.click('#screen-btn');
    await customer.page.waitForFunction(() => document.getElementById('screen-view').hidden, null, { timeout: left() });
    result.screen.stopped = true;
    // The agent ends the call; the customer rates it on the end screen, by keyboard.
    await agent.page.click('#end-btn');
    await agent.page.click('#end-btn');
    await customer.page.waitForSelector('#rate-form input[value="4"]', { timeout: left() });
    await customer.page.focus('#rate-form input[value="4"]');
    await customer.page.keyboard.press('Space');
    await customer.page.fill('#rate-comment', 'Quick and clear');
    await customer.page.click('#rate-form button[type=submit]');
    await customer.page.waitForSelector('#rate-thanks', { timeout: left() });
    result.rated = await customer.page.evaluate(() => ({ score: window.__sightline.rated, legend: document.querySelector('#done').textContent }));
    await shot(customer, 'customer-rated.png');
    return result;
  } catch (e) {
    for (const s of [agent, customer]) {
      const trail = await s.page.evaluate(() => window.__sightline && window.__sightline.log).catch(() => null);
      log(s.name, 'trail:\n  ' + (trail || []).slice(-30).join('\n  '));
      await shot(s, `${s.name}-incall-failure.png`);
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
