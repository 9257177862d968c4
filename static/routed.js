// Routed calls (docs/signaling.md §8a): one RTCPeerConnection to the server's media engine.
// Loaded by join.js with import() when the first `routed` / `media_offer` arrives; join.js
// passes a small API (state, send, tile rendering, its peer-to-peer helpers). The engine
// always offers: receive-only sections for what this page publishes (our tracks go there),
// one send-only section per forwarded track, each stream named after its publisher.
export default function routed(api) {
  const { S, send, trail, mark } = api;
  // gap: the longest time between two frames shown on any tile while switching.
  const R = S.rt = { pc: null, streams: new Map(), done: new Set(), gap: 0, until: 0, q: Promise.resolve() };

  // Measures frame gaps on every remote tile until 3 s after the last switch: frames shown
  // by the tile's front video (a tile may hold a second one, being prepared, behind it).
  const watch = () => {
    for (const v of document.querySelectorAll('#tiles video')) {
      if (v.rtw || !v.requestVideoFrameCallback) continue;
      v.rtw = true;
      const f = (now) => {
        const d = v.parentNode;
        if (d && d.firstChild === v) {
          if (d.rtLast && now < R.until && v.srcObject) {
            R.gap = Math.max(R.gap, now - d.rtLast);
            S.marks.routedGapMs = Math.round(R.gap);
          }
          d.rtLast = now;
        }
        if (v.isConnected) v.requestVideoFrameCallback(f);
      };
      v.requestVideoFrameCallback(f);
    }
  };
  // First occurrence of a step of the switch (the marks show where its time goes).
  const once = (k) => { if (S.marks[k] === undefined) mark(k); };

  function open() {
    const pc = R.pc = new RTCPeerConnection({ ...api.rtcConfig(), iceCandidatePoolSize: 0 });
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate && R.pc === pc) send({ type: 'media_candidate', candidate: candidate.toJSON() });
    };
    pc.ontrack = ({ track, streams }) => {
      const s = streams[0];
      if (!s) return;
      R.streams.set(s.id, s);
      trail('engine track', s.id, track.kind);
    };
    pc.oniceconnectionstatechange = () => {
      trail('engine ice', pc.iceConnectionState);
      if (pc.iceConnectionState === 'connected') once('routedIce');
      api.status();
    };
    pc.onconnectionstatechange = () => { if (pc.connectionState === 'connected') once('routedDtls'); };
    return pc;
  }

  // The engine's receive-only sections (by mid) take our microphone and camera.
  async function onOffer(sdp) {
    once('routedOffer');
    const pc = R.pc || open();
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const ours = new Set();
    for (const sec of sdp.split(/\r?\nm=/).slice(1)) {
      const mid = /\na=mid:(\S+)/.exec(sec);
      if (mid && /\na=recvonly/.test(sec)) ours.add(mid[1]);
    }
    for (const x of pc.getTransceivers()) {
      if (!ours.has(x.mid) || x.stopped) continue;
      const track = S.stream.getTracks().find((t) => t.kind === x.receiver.track.kind) || null;
      if (x.direction !== 'sendonly') x.direction = 'sendonly';
      if (x.sender.track !== track) await x.sender.replaceTrack(track).catch((e) => trail('engine track', e.message));
      if (x.sender.setStreams) x.sender.setStreams(S.stream);
    }
    // This page takes the DTLS server's side: the engine starts the handshake once its own
    // ICE is up. (As the client, the page's first ClientHello may reach the engine before
    // the answer has, and is lost; Chrome resends it only a second later.)
    const answer = await pc.createAnswer();
    await pc.setLocalDescription({ type: 'answer', sdp: answer.sdp.replace(/a=setup:active/g, 'a=setup:passive') });
    send({ type: 'media_answer', sdp: pc.localDescription.sdp });
    once('routedAnswer');
    for (const [id, s] of R.streams) if (!s.getTracks().some((t) => t.readyState === 'live')) R.streams.delete(id);
    for (const id of R.streams.keys()) ready(id);
  }

  // A tile that shows this participant over the mesh gets the engine's stream in a second,
  // muted, transparent video beside the first: its first frame is what `ready` waits for,
  // and the swap then shows a frame at once (setting srcObject on the shown video would
  // leave it blank until the new stream's first frame).
  function back(p, s) {
    const d = p && p.tile, v = d && d.firstChild;
    if (!v || !v.srcObject || v.srcObject === s || !s.getVideoTracks().length) return null;
    if (d.rtBack && d.rtBack.srcObject === s) return d.rtBack;
    if (d.rtBack) d.rtBack.remove();
    const b = d.rtBack = v.cloneNode();
    b.muted = true;
    b.style.cssText = 'position:absolute;inset:0;opacity:0;pointer-events:none';
    b.srcObject = s;
    v.after(b);
    return b;
  }

  // Waits until the engine delivers this publisher's media (first frame in the prepared
  // video, else first decoded frame; audio only: the track unmutes), then shows it on the
  // tile and lets the mesh connection go.
  async function ready(id) {
    if (R.done.has(id) || R.waiting?.has(id)) return;
    (R.waiting ||= new Set()).add(id);
    const s = R.streams.get(id);
    const pc = R.pc;
    for (let i = 0; i < 500 && R.pc === pc && R.streams.get(id) === s; i++) {
      const v = s.getVideoTracks()[0], a = s.getAudioTracks()[0];
      const b = back(S.peers.get(id), s);
      if (b && b.readyState >= 2) break;
      if (v && !b && i % 3 === 0) {
        const r = await pc.getStats(v).catch(() => null);
        let n = 0;
        if (r) r.forEach((x) => { if (x.type === 'inbound-rtp') n += x.framesDecoded || 0; });
        if (n > 0) break;
      }
      if (a && !a.muted && (!v || i >= 100)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    R.waiting.delete(id);
    if (R.pc !== pc || R.streams.get(id) !== s) return;
    once('routedDecoded');
    R.done.add(id);
    const p = S.peers.get(id);
    if (p) adopt(p);
  }

  // A participant's tile shows the engine's stream; its mesh connection closes later (the
  // other side may still be waiting for the engine's copy of ours and shows this one until
  // then). Meanwhile it carries our camera at a quarter of the size: a page that switches
  // encodes for both connections, and on a busy device that second encoder costs frames.
  function adopt(p) {
    const s = R.streams.get(p.id);
    if (!s || !R.done.has(p.id)) return;
    const old = p.pc;
    if (old) {
      clearTimeout(p.offerTimer);
      clearTimeout(p.iceTimer);
      p.pc = null;
      for (const x of old.getSenders()) {
        const prm = x.track && x.track.kind === 'video' && x.getParameters();
        if (!prm || !prm.encodings || !prm.encodings[0]) continue;
        Object.assign(prm.encodings[0], { scaleResolutionDownBy: 4, maxBitrate: 150000 });
        x.setParameters(prm).catch(() => {});
      }
      setTimeout(() => old.close(), 8000);
      trail('mesh closed for', p.id);
    }
    if (p.src !== s) {
      p.src = s;
      R.until = performance.now() + 3000;
      const d = p.tile, b = d && d.rtBack;
      if (b && b.srcObject === s) {
        d.firstChild.replaceWith(b);
        b.style.cssText = '';
        b.muted = false;
      }
      if (d) d.rtBack = null;
      mark('routedSwitch');
    }
    api.tile(p);
    watch();
    api.status();
  }
  R.adopt = adopt;

  R.close = () => {
    for (const d of document.querySelectorAll('#tiles .tile')) if (d.rtBack) { d.rtBack.remove(); d.rtBack = null; }
    if (R.pc) R.pc.close();
    R.pc = null;
    R.streams.clear();
    R.done.clear();
  };

  return (m) => {
    R.q = R.q.then(async () => {
      if (m.type === 'routed') {
        if (m.routed) {
          R.until = performance.now() + 15000;
          watch();
          return;
        }
        // Back to the mesh: every participant gets a peer-to-peer connection again.
        R.close();
        for (const p of S.peers.values()) if (!p.pc) { p.src = null; api.newPc(p); api.sync(p); }
        return;
      }
      if (m.type === 'media_offer' && S.routed) await onOffer(m.sdp);
    }).catch((e) => trail('engine', e.name, e.message));
  };
}
