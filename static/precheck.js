// Pre-call check (docs/signaling.md, section 10): camera, microphone, and which TURN
// transports (udp, tcp, tls) give this page a relay candidate. Loaded by join.js once the
// device check is done, customers only; the agent sees the result before the customer joins.

const token = location.pathname.split('/').pop();
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

// A relay candidate over one TURN URL alone, within 5 s.
async function relay(server, url) {
  const pc = new RTCPeerConnection({ iceServers: [{ ...server, urls: [url] }], iceTransportPolicy: 'relay' });
  try {
    pc.createDataChannel('precheck');
    const found = new Promise((res) => {
      pc.onicecandidate = (e) => { if (!e.candidate) res(false); else if (/ typ relay/.test(e.candidate.candidate)) res(true); };
      setTimeout(res, 5000, false);
    });
    await pc.setLocalDescription();
    return await found;
  } catch {
    return false;
  } finally {
    pc.close();
  }
}

export default async function precheck(S) {
  if (S.role !== 'customer' || S.prechecked) return;
  S.prechecked = true;
  for (let i = 0; !S.cfg && i < 100; i++) await wait(100);
  if (!S.cfg) return;
  const started = performance.now();
  const tests = [];
  for (const server of S.cfg.ice_servers || []) {
    for (const url of [].concat(server.urls || [])) {
      const t = /^turns:/i.test(url) ? 'tls' : /^turn:/i.test(url) ? (/transport=tcp/i.test(url) ? 'tcp' : 'udp') : null;
      if (t) tests.push(relay(server, url).then((ok) => [t, ok]));
    }
  }
  const out = { udp: null, tcp: null, tls: null };
  for (const [t, ok] of await Promise.all(tests)) out[t] = out[t] || ok;
  const live = (list) => list.some((tr) => tr.readyState === 'live');
  const result = { camera: live(S.stream.getVideoTracks()), microphone: live(S.stream.getAudioTracks()), relay: out };
  S.precheck = { ...result, ms: Math.round(performance.now() - started) };
  await fetch(`/api/v1/join/${encodeURIComponent(token)}/precheck`, {
    method: 'POST', credentials: 'omit', headers: { 'content-type': 'application/json' }, body: JSON.stringify(result),
  }).catch(() => {});
}
