// Recording with the real recorder between two headless Chromium pages. Session A
// (recording `always`): the agent agrees at once, the customer's page asks and the test
// reads the recordings list while it waits (nothing of the customer may be written), then
// the customer agrees; the agent pauses and resumes; the agent ends the call. Session B:
// the customer declines, the agent agrees; the customer's video keeps rising; the agent
// ends. Prints one JSON line (span times as the pages saw them, the lists read while
// waiting). Called by tests/browser_call.rs:
//   node tests/browser/recording_files.mjs '{"a":{…},"b":{…},"api":…,"key":…,"artifacts":…}'
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2]);
const deadline = Date.now() + (args.timeoutMs || 90000);
const log = (...m) => console.error(`[recording_files.mjs ${((Date.now() % 100000) / 1000).toFixed(3)}]`, ...m);
const left = () => Math.max(1000, deadline - Date.now());

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

async function launch(name) {
  const dir = await mkdtemp(join(tmpdir(), `sightline-${name}-`));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: args.chromium || '/usr/bin/chromium', headless: true, args: flags,
    viewport: { width: 800, height: 600 }, locale: 'en-US', timeout: 30000, bypassCSP: true,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', (e) => log(name, 'pageerror', e.message));
  return { name, ctx, page, dir };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const writing = (side, on) => side.page.waitForSelector(`#rec-ind[data-writing="${on}"]`, { state: 'attached', timeout: left() });
const connected = (side) => side.page.waitForSelector('body[data-status="sConnected"]', { timeout: left() });

async function enter(side, url, name) {
  await side.page.goto(url, { timeout: left() });
  await side.page.waitForSelector('#join:not([disabled])', { timeout: left() });
  if (name) await side.page.fill('#name', name);
  await side.page.click('#join');
}

async function list(session) {
  const r = await fetch(`${args.api}/api/v1/sessions/${session}/recordings`, { headers: { authorization: `Bearer ${args.key}` } });
  return (await r.json()).items.map((i) => ({ participant: i.participant_id, status: i.status }));
}

async function frames(page) {
  return page.evaluate(async () => {
    const pc = window.__sightline && window.__sightline.pc;
    if (!pc) return 0;
    let n = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
    return n;
  });
}

// Returns when the agent confirmed the end (the second press).
async function end(agent, customer) {
  await agent.page.click('#end-btn');
  await agent.page.click('#end-btn');
  const at = Date.now();
  await Promise.all([agent, customer].map((s) => s.page.waitForSelector('body[data-phase="done"]', { timeout: left() })));
  return at;
}

async function main() {
  await mkdir(args.artifacts, { recursive: true });
  const [agent, customer] = await Promise.all([launch('agent'), launch('customer')]);
  const r = { a: {}, b: {} };
  try {
    // Session A: recording `always`.
    await enter(agent, args.a.agentUrl);
    await enter(customer, args.a.customerUrl, 'Sam');
    await Promise.all([connected(agent), connected(customer)]);
    await agent.page.waitForSelector('#rec-consent', { timeout: left() });
    await agent.page.click('#rec-agree');
    await writing(agent, true);
    await customer.page.waitForSelector('#rec-consent', { timeout: left() });
    // The agent is written, the customer is asked: wait until the agent's span exists,
    // then a little longer, and read the list while the customer has not answered.
    const until = Date.now() + 15000;
    while (Date.now() < until && !(await list(args.a.id)).some((i) => i.participant === args.a.agentId)) await sleep(100);
    await sleep(1000);
    r.a.beforeConsent = await list(args.a.id);
    r.a.promptStillOpen = await customer.page.isVisible('#rec-consent');
    await customer.page.click('#rec-agree');
    await writing(customer, true);
    const on1 = Date.now();
    await sleep(3000);
    await agent.page.click('#rec-pause');
    await Promise.all([writing(agent, false), writing(customer, false)]);
    r.a.firstSpanMs = Date.now() - on1;
    await sleep(1000);
    await agent.page.click('#rec-resume');
    await Promise.all([writing(agent, true), writing(customer, true)]);
    const on2 = Date.now();
    await sleep(3000);
    r.a.endedAt = await end(agent, customer);
    r.a.secondSpanMs = r.a.endedAt - on2;
    log('session A done', JSON.stringify(r.a));

    // Session B: the customer declines; the call goes on.
    await enter(agent, args.b.agentUrl);
    await enter(customer, args.b.customerUrl, 'Sam');
    await Promise.all([connected(agent), connected(customer)]);
    await Promise.all([agent, customer].map((s) => s.page.waitForSelector('#rec-consent', { timeout: left() })));
    await agent.page.click('#rec-agree');
    await customer.page.click('#rec-decline');
    await writing(agent, true);
    // Frames on the customer's page: wait until some arrive, then prove they keep rising.
    const until2 = Date.now() + 15000;
    let f1 = 0;
    while (Date.now() < until2 && !(f1 = await frames(customer.page))) await sleep(200);
    await sleep(2000);
    r.b.customerFrames = [f1, await frames(customer.page)];
    r.b.customerStatus = await customer.page.evaluate(() => document.body.dataset.status);
    r.b.endedAt = await end(agent, customer);
    return r;
  } catch (e) {
    for (const s of [agent, customer]) {
      const trail = await s.page.evaluate(() => window.__sightline && window.__sightline.log).catch(() => null);
      log(s.name, 'trail:\n  ' + (trail || []).slice(-30).join('\n  '));
      await s.page.screenshot({ path: join(args.artifacts, `${s.name}-recording-files-failure.png`) }).catch(() => {});
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
