// The Chatwoot dashboard app inside an iframe of a page standing in for Chatwoot (another
// origin, plus a third origin that forges appContext messages). Called by
// tests/browser_call.rs; prints one JSON line with what it saw.
//   node tests/browser/chatwoot_app.mjs '{"hostUrl":…,"badToken":…,"token":…}'
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2]);
const log = (...m) => console.error('[chatwoot_app.mjs]', ...m);
const disabled = ['AvoidUnnecessaryBeforeUnloadCheckSync', 'DestroyProfileOnBrowserClose', 'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable', 'LensOverlay', 'MediaRouter', 'PaintHolding', 'OptimizationHints',
  'NetworkTimeServiceQuerying', 'AimEnabled', 'PreconnectToSearch', 'WebRtcHideLocalIpsWithMdns'];
const flags = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
  `--disable-features=${disabled.join(',')}`,
  '--allow-loopback-in-peer-connection',
];

const out = { ok: false };
const dir = await mkdtemp(join(tmpdir(), 'sightline-cwapp-'));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(dir, {
    executablePath: args.chromium || '/usr/bin/chromium', headless: true, args: flags,
    viewport: { width: 900, height: 700 }, timeout: 30000,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', (e) => log('pageerror', e.message));
  await page.goto(args.hostUrl);
  const appFrame = async () => {
    for (let i = 0; i < 100; i++) {
      const f = page.frames().find((fr) => fr.url().includes('/integrations/chatwoot/app'));
      if (f) return f;
      await page.waitForTimeout(50);
    }
    throw new Error('the app frame never loaded');
  };
  const frame = await appFrame();
  const state = () => frame.evaluate(() => document.body.dataset.state);
  const waitState = (s) => frame.waitForFunction((x) => document.body.dataset.state === x, s, { timeout: 15000 });
  // Context received (from the Chatwoot origin), then a sign-in is asked for.
  await waitState('signed_out');
  out.conversation = await frame.evaluate(() => document.body.dataset.conversation);
  out.asked = await page.evaluate(() => window.__asked);
  // A token Chatwoot refuses: a clear message.
  await frame.fill('#token', args.badToken);
  await frame.click('#signin button[type=submit]');
  await frame.waitForFunction(() => document.getElementById('signin-error').textContent.length > 0, null, { timeout: 10000 });
  out.refusedMessage = await frame.textContent('#signin-error');
  // The agent's token.
  await frame.fill('#token', args.token);
  await frame.click('#signin button[type=submit]');
  await waitState('none');
  out.states = [await state()];
  out.agentLine = await frame.textContent('#agent');
  // Start video: the agent's call opens in a popup.
  const t0 = Date.now();
  const [popup] = await Promise.all([
    page.waitForEvent('popup', { timeout: 10000 }),
    frame.click('#start'),
  ]);
  await popup.waitForURL(/\/j\//, { timeout: 15000 });
  out.popupUrl = popup.url();
  out.popupMs = Date.now() - t0;
  await waitState('waiting');
  out.states.push(await state());
  // The forging frame kept posting all along: still the right conversation.
  out.conversationAfter = await frame.evaluate(() => document.body.dataset.conversation);
  await popup.close();
  await frame.click('#end');
  await waitState('ended');
  out.states.push(await state());
  await page.screenshot({ path: join(args.artifacts, 'chatwoot-app.png') }).catch(() => {});
  out.ok = true;
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  if (ctx) await ctx.close().catch(() => {});
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}
console.log(JSON.stringify(out));
