// Accessibility of the customer's join page: axe-core over each state (pre-join, lobby, in
// the call with the chat panel open, ended with the rating form), in English and Arabic,
// on a desktop and a phone viewport; no horizontal scrolling; the layout mirrored in
// Arabic; the controls reachable by keyboard. ONE Chromium process: one agent page (its
// own context) lets each customer out of the lobby and ends the call; each customer flow
// gets a fresh context with the CSP bypassed so that axe can be injected. Screenshots of
// every state go to the artifacts directory. Prints one JSON line. Called by
// tests/browser_call.rs:
//   node tests/browser/a11y.mjs '{"flows":[{"lang":"ar","phone":true,"agentUrl":…,"customerUrl":…}],"artifacts":…}'
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const args = JSON.parse(process.argv[2]);
const deadline = Date.now() + (args.timeoutMs || 150000);
const log = (...m) => console.error(`[a11y.mjs ${((Date.now() % 100000) / 1000).toFixed(3)}]`, ...m);
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
];
const PHONE = {
  viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2,
  userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36',
};
const DESKTOP = { viewport: { width: 1280, height: 800 } };

const watch = (name, page) => {
  page.on('console', (m) => { if (m.type() === 'error') log(name, 'console', m.text()); });
  page.on('pageerror', (e) => log(name, 'pageerror', e.message));
};

// axe-core over the whole document; only serious and critical violations are kept (with
// enough detail to fix them), the rest counted.
async function audit(page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ path: AXE });
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    return {
      serious: bad.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(' '), why: n.failureSummary })),
      })),
      minor: r.violations.filter((v) => !bad.includes(v)).map((v) => `${v.id} (${v.impact}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')})`),
    };
  });
}

// Where things are, to check the mirroring: boxes of the self view, the control bar's
// buttons in DOM order, the chat panel; and whether the page scrolls sideways.
const geometry = (page) => page.evaluate(() => {
  const box = (el) => { if (!el || el.hidden) return null; const r = el.getBoundingClientRect(); return { x: Math.round(r.x), w: Math.round(r.width) }; };
  return {
    width: innerWidth, scrollWidth: document.documentElement.scrollWidth, dir: document.documentElement.dir,
    self: box(document.getElementById('self')), chat: box(document.getElementById('chat')),
    bar: [...document.querySelectorAll('#call .bar > button:not([hidden])')].map((b) => ({ id: b.id, ...box(b) })),
    status: box(document.getElementById('status')),
  };
});

// Tab through the page (at most 40 steps): which controls get focus.
const tabOrder = (page, steps = 40) => page.evaluate(() => document.activeElement && document.activeElement.blur())
  .then(async () => {
    const seen = [];
    for (let i = 0; i < steps; i++) {
      await page.keyboard.press('Tab');
      const id = await page.evaluate(() => { const a = document.activeElement; return a && a !== document.body ? (a.id || `${a.tagName.toLowerCase()}.${a.className}`) : null; });
      if (id && seen.includes(id)) break;
      if (id) seen.push(id);
    }
    return seen;
  });

async function state(flow, page, name) {
  const tag = `${flow.lang}-${flow.phone ? 'phone' : 'desktop'}-${name}`;
  // Let transitions and fonts settle before looking.
  await page.waitForTimeout(300);
  const out = { state: name, axe: await audit(page), geometry: await geometry(page) };
  await page.screenshot({ path: join(args.artifacts, `a11y-${tag}.png`) }).catch((e) => log('screenshot', e.message));
  log(tag, 'serious', out.axe.serious.length, 'minor', out.axe.minor.join(', ') || '-');
  return out;
}

async function customerFlow(browser, agentCtx, flow) {
  const agent = await agentCtx.newPage();
  watch('agent', agent);
  await agent.goto(flow.agentUrl, { timeout: left() });
  await agent.waitForSelector('#join:not([disabled])', { timeout: left() });
  await agent.click('#join');
  await agent.waitForSelector('body[data-status="sWaiting"]', { timeout: left() });

  const ctx = await browser.newContext({ ...(flow.phone ? PHONE : DESKTOP), bypassCSP: true, locale: flow.lang === 'ar' ? 'ar-EG' : 'en-US' });
  const page = await ctx.newPage();
  watch(`customer-${flow.lang}`, page);
  const states = [];
  let agentAudit = null;
  try {
    await page.goto(flow.customerUrl, { timeout: left() });
    await page.waitForSelector('#join:not([disabled])', { timeout: left() });
    const pre = await state(flow, page, 'prejoin');
    pre.joinLabel = await page.textContent('#join');
    pre.keyboard = await tabOrder(page);
    states.push(pre);

    // Join by keyboard: focus the name field, type, Enter on the join button.
    await page.focus('#name');
    await page.keyboard.type('Sam');
    await page.focus('#join');
    await page.keyboard.press('Enter');
    await page.waitForSelector('body[data-phase="lobby"]', { timeout: left() });
    states.push(await state(flow, page, 'lobby'));

    await agent.waitForSelector('#waiting li button', { timeout: left() });
    await agent.evaluate(() => document.querySelector('#waiting li button').click());
    await page.waitForSelector('body[data-status="sConnected"]', { timeout: left() });
    await page.waitForSelector('#chat-btn', { timeout: left() });
    await page.focus('#chat-btn');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#chat:not([hidden])', { timeout: left() });
    await page.keyboard.type(flow.lang === 'ar' ? 'مرحبا، هل تسمعني؟' : 'Hello, can you hear me?');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#chat-log li', { timeout: left() });
    // The agent's picture, for the screenshot (bounded: the audit does not need it).
    await page.waitForFunction(() => window.__sightline.firstFrameWall !== null, null, { timeout: 5000 }).catch(() => log('no remote frame yet'));
    const call = await state(flow, page, 'call');
    call.keyboard = await tabOrder(page);
    states.push(call);
    if (flow.auditAgent) {
      // The agent's page in the same call, the people panel (roster, invite, transfer) open.
      await agent.evaluate(() => { if (document.getElementById('panel').hidden) document.getElementById('people-btn').click(); });
      await agent.waitForSelector('#panel:not([hidden])', { timeout: left() });
      agentAudit = await state({ ...flow, lang: `agent-${flow.lang}` }, agent, 'call');
    }

    await agent.click('#end-btn');
    await agent.click('#end-btn');
    await page.waitForSelector('#rate-form', { timeout: left() });
    const done = await state(flow, page, 'ended');
    done.keyboard = await tabOrder(page);
    states.push(done);
  } catch (e) {
    await page.screenshot({ path: join(args.artifacts, `a11y-${flow.lang}-${flow.phone ? 'phone' : 'desktop'}-failure.png`) }).catch(() => {});
    const trail = await page.evaluate(() => window.__sightline && window.__sightline.log.slice(-30)).catch(() => null);
    log('customer trail:\n  ' + (trail || []).join('\n  '));
    throw e;
  } finally {
    await ctx.close().catch(() => {});
    await agent.close().catch(() => {});
  }
  return { lang: flow.lang, phone: !!flow.phone, states, agent: agentAudit };
}

async function main() {
  await mkdir(args.artifacts, { recursive: true });
  const browser = await chromium.launch({ executablePath: args.chromium || '/usr/bin/chromium', headless: true, args: flags, timeout: 30000 });
  try {
    const agentCtx = await browser.newContext({ ...DESKTOP, locale: 'en-US', bypassCSP: true });
    const flows = [];
    for (const f of args.flows) flows.push(await customerFlow(browser, agentCtx, f));
    return { flows, axeVersion: await (async () => { const p = await agentCtx.newPage(); await p.addScriptTag({ path: AXE }); const v = await p.evaluate(() => window.axe.version); await p.close(); return v; })() };
  } finally {
    await browser.close().catch(() => {});
  }
}

main().then(
  (r) => { console.log(JSON.stringify({ ok: true, ...r })); process.exit(0); },
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) })); process.exit(1); },
);
