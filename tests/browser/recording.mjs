// Recording on the call pages between two headless Chromium pages (agent desktop,
// customer phone in Arabic): the agent starts it, declines for themself; the customer's
// page asks for consent, the customer agrees, both pages show the indicator and the
// customer's badge; the agent pauses and resumes and the indicator follows; the customer
// withdraws. Prints one JSON line. Called by tests/browser_call.rs:
//   node tests/browser/recording.mjs '{"agentUrl":…,"customerUrl":…,"artifacts":…}'
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const args = JSON.parse(process.argv[2]);
const deadline = Date.now() + (args.timeoutMs || 90000);
const log = (...m) => console.error(`[recording.mjs ${((Date.now() % 100000) / 1000).toFixed(3)}]`, ...m);
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

async function launch(name, viewport) {
  const dir = await mkdtemp(join(tmpdir(), `sightline-${name}-`));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: args.chromium || '/usr/bin/chromium', headless: true, args: flags, viewport,
    locale: 'en-US', timeout: 30000, bypassCSP: true,
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


// axe-core (as in a11y.mjs): serious and critical violations, with where.
async function audit(page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ path: AXE });
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
}

const writing = (side, on) => side.page.waitForSelector(`#rec-ind[data-writing="${on}"]`, { state: 'attached', timeout: left() });

async function main() {
  await mkdir(args.artifacts, { recursive: true });
  const [agent, customer] = await Promise.all([
    launch('agent', { width: 1280, height: 800 }), launch('customer', { width: 390, height: 780 })]);
  const r = {};
  try {
    await openAndJoin(agent, args.agentUrl);
    await openAndJoin(customer, args.customerUrl, 'Sam');
    await Promise.all([agent, customer].map((s) => s.page.waitForSelector('body[data-status="sConnected"]', { timeout: left() })));
    log('connected');
    // Before anything starts: no indicator, no prompt, the agent's Start is offered.
    await agent.page.waitForSelector('#rec-start:not([hidden])', { timeout: left() });
    r.before = await customer.page.evaluate(() => ({ ind: !!document.querySelector('#rec-ind:not([hidden])'), prompt: !!document.getElementById('rec-consent') }));
    await agent.page.click('#rec-start');
    // The agent is asked too, and declines: nothing is written yet.
    await agent.page.waitForSelector('#rec-consent', { timeout: left() });
    r.agentFocus = await agent.page.evaluate(() => document.activeElement && document.activeElement.id);
    await agent.page.click('#rec-decline');
    // The customer's page asks, in Arabic, before anything of theirs is written.
    await customer.page.waitForSelector('#rec-consent', { timeout: left() });
    // The operator's wording for Arabic replaces the built-in text.
    if (args.wording) {
      await customer.page.waitForFunction((w) => document.getElementById('rec-consent-text')?.textContent === w, args.wording, { timeout: left() });
      r.wordingShown = true;
    }
    r.prompt = await customer.page.evaluate(() => {
      const d = document.getElementById('rec-consent');
      const ind = document.getElementById('rec-ind');
      return {
        title: document.getElementById('rec-consent-title').textContent,
        role: d.getAttribute('role'), labelled: d.getAttribute('aria-labelledby'),
        dir: getComputedStyle(d).direction, indWriting: ind.dataset.writing, indShown: !ind.hidden,
        rec: document.body.dataset.rec,
        onScreen: (() => { const b = d.getBoundingClientRect(); return b.top >= 0 && b.bottom <= innerHeight && b.left >= 0 && b.right <= innerWidth; })(),
      };
    });
    await shot(customer, 'customer-recording-consent.png');
    r.axeConsent = await audit(customer.page);
    const t0 = Date.now();
    await customer.page.click('#rec-agree');
    await Promise.all([writing(agent, true), writing(customer, true)]);
    r.agreeToIndicatorMs = Date.now() - t0;
    r.on = {
      agentInd: await agent.page.textContent('#rec-ind'),
      customerInd: await customer.page.textContent('#rec-ind'),
      badgeOnAgentPage: await agent.page.evaluate(() => [...document.querySelectorAll('.tile .rb')].map((b) => [b.dataset.on, b.textContent])),
      agentList: await agent.page.evaluate(() => [...document.querySelectorAll('#rec-list li')].map((li) => li.textContent)),
      withdrawLabel: await customer.page.textContent('#rec-me'),
      // Centred at the top (clear of the self view at the line's end), laid out right to
      // left in Arabic, on screen.
      ind: await customer.page.evaluate(() => {
        const d = document.getElementById('rec-ind');
        const b = d.getBoundingClientRect();
        return { dir: getComputedStyle(d).direction, centred: Math.abs(b.left + b.width / 2 - innerWidth / 2) < 2, onScreen: b.left >= 0 && b.right <= innerWidth && b.top >= 0 };
      }),
      // The prompt is gone once answered; the self view is not covered by the indicator.
      selfClear: await agent.page.evaluate(() => {
        const a = document.getElementById('rec-ind').getBoundingClientRect();
        const s = document.getElementById('self').getBoundingClientRect();
        return a.right <= s.left || a.left >= s.right || a.bottom <= s.top || a.top >= s.bottom;
      }),
    };
    await shot(customer, 'customer-recording-on.png');
    await shot(agent, 'agent-recording-on.png');
    await agent.page.click('#people-btn');
    r.axeAgent = await audit(agent.page);
    r.axeCustomer = await audit(customer.page);
    // Pause and resume: the indicator follows on both pages.
    await agent.page.click('#rec-pause');
    await Promise.all([writing(agent, false), writing(customer, false)]);
    r.paused = { agentInd: await agent.page.textContent('#rec-ind'), resumeShown: await agent.page.isVisible('#rec-resume') };
    await agent.page.click('#rec-resume');
    await Promise.all([writing(agent, true), writing(customer, true)]);
    r.resumed = true;
    // The customer withdraws from the visible control: nothing is written any more.
    await customer.page.click('#rec-me');
    await Promise.all([writing(agent, false), writing(customer, false)]);
    r.withdrawn = { allowLabel: await customer.page.textContent('#rec-me'), status: await customer.page.evaluate(() => document.body.dataset.status) };
    return r;
  } catch (e) {
    for (const s of [agent, customer]) {
      const trail = await s.page.evaluate(() => window.__sightline && window.__sightline.log).catch(() => null);
      log(s.name, 'trail:\n  ' + (trail || []).slice(-30).join('\n  '));
      await shot(s, `${s.name}-recording-failure.png`);
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
