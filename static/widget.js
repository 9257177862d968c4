// Sightline agent widget: one script tag and one call.
//
//   <script src="https://video.example.com/widget.js"></script>
//   <div id="video"></div>
//   <script>
//     Sightline.mount(document.getElementById('video'), {
//       token,                                   // agent token from POST /api/v1/agent-tokens
//       conversation: { platform: 'chatwoot', id: '4711' }, // optional if the token names one
//       customer: { name: 'Sam', email: 'sam@example.com', locale: 'fr' }, // optional
//       onEvent(name, data) { … },               // optional; also a 'sightline' DOM event
//     });
//   </script>
//
// Events: ready, session-created, customer-joined, customer-left, reconnecting,
// connected, ended, error. Commands: widget.end(), widget.mute(), widget.unmute().
// The call panel is an iframe of the agent's join page; it talks to this script with
// postMessage (protocol "sightline", version 1, docs/embedding.md), origin-checked both ways.
(() => {
  'use strict';
  if (window.Sightline && window.Sightline.mount) return;

  const PROTOCOL = 'sightline';
  const VERSION = 1;
  const script = document.currentScript;
  const defaultBase = script && script.src ? new URL(script.src).origin : location.origin;

  const CSS = `
:host{all:initial;display:block;font:14px/1.4 system-ui,sans-serif;color:#1d2430}
*{box-sizing:border-box}
button{font:inherit;border:0;border-radius:8px;padding:.5em 1em;cursor:pointer;background:#e8ebf0;color:#1d2430}
button:focus-visible{outline:3px solid #7aa7ff;outline-offset:2px}
button[disabled]{opacity:.6;cursor:default}
.start{background:#1f6feb;color:#fff;font-weight:600}
.end{background:#d1242f;color:#fff}
.panel{border:1px solid #d0d7de;border-radius:12px;overflow:hidden;background:#fff}
.bar{display:flex;flex-wrap:wrap;gap:.4em;align-items:center;padding:.5em}
.status{flex:1 1 100%;font-weight:600}
.status[data-state=ended]{color:#57606a}
iframe{display:block;width:100%;height:var(--sightline-height,360px);border:0;background:#111}
.note{font-size:12px;color:#57606a;padding:0 .5em .5em}
[hidden]{display:none!important}`;

  const TEXT = {
    start: 'Start video',
    starting: 'Starting…',
    waiting: 'Waiting for the customer…',
    joined: 'Customer joined',
    left: 'The customer left',
    reconnecting: 'Reconnecting…',
    ended: 'Call ended',
    copy: 'Copy customer link',
    copied: 'Link copied',
    resend: 'New link',
    email: 'E-mail link',
    emailed: 'E-mail queued',
    end: 'End call',
    failed: 'Could not start the call: ',
  };

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  }

  class Widget {
    constructor(host, opts) {
      if (!host || !opts || !opts.token) throw new Error('Sightline.mount(element, { token }) needs an element and an agent token');
      this.opts = opts;
      this.base = (opts.baseUrl || defaultBase).replace(/\/$/, '');
      this.origin = new URL(this.base).origin;
      this.host = host;
      this.session = null;
      this.frame = null;
      this.root = host.shadowRoot || host.attachShadow({ mode: 'open' });
      this.root.innerHTML = '';
      this.root.append(el('style', {}, CSS));
      this.startBtn = el('button', { class: 'start', type: 'button' }, TEXT.start);
      this.startBtn.addEventListener('click', () => this.start());
      this.panel = el('div', { class: 'panel', hidden: '' });
      this.status = el('div', { class: 'status', role: 'status', 'aria-live': 'polite' });
      const bar = el('div', { class: 'bar' });
      this.copyBtn = el('button', { type: 'button' }, TEXT.copy);
      this.resendBtn = el('button', { type: 'button' }, TEXT.resend);
      this.emailBtn = el('button', { type: 'button' }, TEXT.email);
      this.endBtn = el('button', { type: 'button', class: 'end' }, TEXT.end);
      this.copyBtn.addEventListener('click', () => this.copyLink());
      this.resendBtn.addEventListener('click', () => this.newLink());
      this.emailBtn.addEventListener('click', () => this.email());
      this.endBtn.addEventListener('click', () => this.end());
      bar.append(this.status, this.copyBtn, this.resendBtn, this.emailBtn, this.endBtn);
      this.note = el('div', { class: 'note', hidden: '' });
      this.frameSlot = el('div');
      this.panel.append(bar, this.note, this.frameSlot);
      this.root.append(this.startBtn, this.panel);
      this.onMessage = (ev) => this.fromPanel(ev);
      window.addEventListener('message', this.onMessage);
    }

    emit(name, data) {
      const detail = { event: name, data: data || {} };
      try { if (this.opts.onEvent) this.opts.onEvent(name, detail.data); } catch (e) { console.error(e); }
      this.host.dispatchEvent(new CustomEvent('sightline', { detail, bubbles: true, composed: true }));
    }

    async api(method, path, body) {
      const headers = { Authorization: 'Bearer ' + this.opts.token };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (method === 'POST' && path === '/api/v1/widget/sessions') headers['Idempotency-Key'] = this.idem;
      const r = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit' });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.detail || r.statusText || String(r.status));
      return data;
    }

    setStatus(key, state) {
      this.status.textContent = TEXT[key];
      this.status.dataset.state = state || key;
    }

    async start() {
      if (this.session) return;
      this.startBtn.disabled = true;
      this.startBtn.textContent = TEXT.starting;
      this.idem = this.idem || uuid();
      try {
        const body = {};
        if (this.opts.conversation) body.conversation = this.opts.conversation;
        if (this.opts.customer) body.customer = this.opts.customer;
        if (this.opts.recording) body.recording = { mode: this.opts.recording };
        this.session = await this.api('POST', '/api/v1/widget/sessions', body);
      } catch (e) {
        this.startBtn.disabled = false;
        this.startBtn.textContent = TEXT.start;
        this.emit('error', { message: String(e.message || e) });
        this.showNote(TEXT.failed + (e.message || e));
        return;
      }
      this.idem = null;
      this.startBtn.hidden = true;
      this.panel.hidden = false;
      this.emailBtn.hidden = !(this.session.customer && this.session.customer.email);
      this.setStatus('waiting');
      this.frame = el('iframe', {
        title: 'Video call',
        allow: 'camera; microphone; autoplay; fullscreen; display-capture',
        src: this.session.agent_url + '?embed=1&parent=' + encodeURIComponent(location.origin),
      });
      this.frameSlot.append(this.frame);
      this.emit('session-created', {
        session_id: this.session.id,
        customer_url: this.session.customer_url,
        conversation: this.session.conversation,
      });
    }

    // Messages from the panel: only from our iframe, only from the Sightline origin.
    fromPanel(ev) {
      if (!this.frame || ev.source !== this.frame.contentWindow || ev.origin !== this.origin) return;
      const m = ev.data;
      if (!m || m.source !== PROTOCOL || m.v !== VERSION || m.type !== 'event' || typeof m.event !== 'string') return;
      switch (m.event) {
        case 'customer-joined': this.setStatus('joined'); break;
        case 'customer-left': this.setStatus('left'); break;
        case 'reconnecting': this.setStatus('reconnecting'); break;
        case 'connected': this.setStatus('joined'); break;
        case 'ended': if (!this.ended()) return; break;
        case 'ready': break;
        default: return;
      }
      this.emit(m.event, Object.assign({ session_id: this.session && this.session.id }, m.data || {}));
    }

    command(name) {
      if (!this.frame || !this.frame.contentWindow) return false;
      this.frame.contentWindow.postMessage({ source: PROTOCOL, v: VERSION, type: 'command', command: name }, this.origin);
      return true;
    }

    showNote(text) {
      this.note.textContent = text;
      this.note.hidden = false;
      this.panel.hidden = false;
    }

    async copyLink() {
      if (!this.session || !this.session.customer_url) return;
      try {
        await navigator.clipboard.writeText(this.session.customer_url);
        this.showNote(TEXT.copied);
      } catch (_) {
        this.showNote(this.session.customer_url);
      }
    }

    async newLink() {
      if (!this.session) return;
      try {
        this.session = await this.api('POST', `/api/v1/widget/sessions/${this.session.id}/customer-link`, {});
        this.showNote(this.session.customer_url);
        this.emit('link-replaced', { session_id: this.session.id, customer_url: this.session.customer_url });
      } catch (e) {
        this.showNote(String(e.message || e));
      }
    }

    async email() {
      if (!this.session) return;
      try {
        await this.api('POST', `/api/v1/widget/sessions/${this.session.id}/invite`, {});
        this.showNote(TEXT.emailed);
      } catch (e) {
        this.showNote(String(e.message || e));
      }
    }

    async end() {
      if (!this.session || this.isEnded) return;
      this.endBtn.disabled = true;
      this.command('end');
      try {
        this.session = await this.api('POST', `/api/v1/widget/sessions/${this.session.id}/end`, {});
      } catch (e) {
        this.endBtn.disabled = false;
        this.showNote(String(e.message || e));
        return;
      }
      if (this.ended()) this.emit('ended', { session_id: this.session.id, reason: this.session.end_reason });
    }

    // Shows the end once; returns whether this call changed anything.
    ended() {
      if (this.isEnded) return false;
      this.isEnded = true;
      if (this.session) this.session.status = 'ended';
      this.setStatus('ended');
      for (const b of [this.copyBtn, this.resendBtn, this.emailBtn, this.endBtn]) b.hidden = true;
      return true;
    }

    // Starts, pauses, resumes or stops the call's recording; resolves to its
    // `{mode, state}`, rejects with the server's reason (the call goes on either way).
    async recording(action) {
      if (!this.session) throw new Error('no call');
      return this.api('POST', `/api/v1/widget/sessions/${this.session.id}/recording/${encodeURIComponent(action)}`, {});
    }

    mute() { return this.command('mute'); }
    unmute() { return this.command('unmute'); }

    unmount() {
      window.removeEventListener('message', this.onMessage);
      this.root.innerHTML = '';
    }
  }

  window.Sightline = Object.freeze({
    version: VERSION,
    mount(element, opts) { return new Widget(element, opts); },
  });
})();
