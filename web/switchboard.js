// Switchboard web phone SDK: a plain ES module, no build step, no dependencies.
//
//   import { Phone } from '/switchboard.js';
//   const phone = new Phone();
//   await phone.connect({ aor: 'alice@example.com', password: 'secret' });
//   await phone.call('bob@example.com');
//
// It speaks the JSON-over-WebSocket API of docs/web-api.md (one WebSocket = one SIP line)
// and carries each call's audio over WebRTC. Every method and event is documented in
// docs/sdk.md. The web phone served at `/` is built on this module and nothing else.

export const VERSION = '1.0.0';

/** The codec list the server uses when a call names none (docs/web-api.md §3). */
export const DEFAULT_CODECS = Object.freeze(['opus', 'g722', 'pcmu', 'pcma', 'dtmf']);

/** The digits `sendDTMF` takes. */
export const DTMF_DIGITS = '0123456789*#ABCD';

/** Every failure the SDK reports is one of these; `code` says which kind, `message` is for people. */
export class SwitchboardError extends Error {
  constructor(code, message, extra) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

// ---------------------------------------------------------------------------------------
// Addresses

/**
 * The WebSocket URL of the phone API for an address of record.
 * `server` may be `ws(s)://host[:port]`, `http(s)://host[:port]` (mapped to ws/wss),
 * `host[:port]`, or empty for the server that served this page.
 */
export function phoneUrl(server, aor) {
  let base = String(server || '').trim();
  if (!base) {
    if (typeof location === 'undefined') throw new SwitchboardError('invalid', 'No server given');
    base = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
  } else if (/^https?:\/\//i.test(base)) {
    base = base.replace(/^http/i, 'ws');
  } else if (!/^wss?:\/\//i.test(base)) {
    base = 'ws://' + base;
  }
  base = base.replace(/\/+$/, '').replace(/\/phone$/, '');
  const a = String(aor).trim().replace(/^sips?:/i, '');
  return `${base}/phone/${encodeURIComponent(a).replace(/%40/g, '@')}`;
}

/**
 * Splits a SIP address as the server sends it (`"Bob" <sip:bob@example.com>`,
 * `<sip:bob@example.com>;tag=x`, `sip:bob@example.com`, `bob@example.com`, `1234`) into
 * `{ display, uri, user, host, address }` where `address` is `user@host` (or the input when
 * it has no host).
 */
export function parseAddress(text) {
  const s = String(text ?? '').trim();
  let display = '';
  let uri = s;
  const m = s.match(/^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>/);
  if (m) {
    display = (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] || '')).trim();
    uri = m[3].trim();
  } else {
    uri = s.split(';')[0].trim();
  }
  const bare = uri.replace(/^sips?:/i, '').split(/[;?]/)[0];
  const at = bare.lastIndexOf('@');
  const user = at >= 0 ? decodeURIComponentSafe(bare.slice(0, at)) : decodeURIComponentSafe(bare);
  const host = at >= 0 ? bare.slice(at + 1) : '';
  return { display, uri, user, host, address: host ? `${user}@${host}` : user };
}

/** A short name for people: the display name, else `user@host`. */
export function displayName(text) {
  const a = parseAddress(text);
  return a.display || a.address || String(text ?? '');
}

function decodeURIComponentSafe(s) {
  try {
    return decodeURIComponent(s);
  } catch (_) {
    return s;
  }
}

// ---------------------------------------------------------------------------------------
// Devices and microphone

/** Can this page use the microphone at all? (`false` on plain http:// pages not on localhost.) */
export function microphoneAvailable() {
  return typeof navigator !== 'undefined' && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

/** Can the audio output device be chosen (`HTMLMediaElement.setSinkId`)? */
export function outputSelectable() {
  return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
}

/**
 * The audio devices: `{ inputs, outputs }`, each a list of `{ deviceId, label }`. Labels are
 * empty until the page has had microphone permission once (a browser rule).
 */
export async function listDevices() {
  if (typeof navigator === 'undefined' || !navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
    return { inputs: [], outputs: [] };
  }
  const all = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind) =>
    all
      .filter((d) => d.kind === kind)
      .map((d, i) => ({ deviceId: d.deviceId, label: d.label || `${kind === 'audioinput' ? 'Microphone' : 'Speaker'} ${i + 1}` }));
  return { inputs: pick('audioinput'), outputs: pick('audiooutput') };
}

/** Turns a getUserMedia failure into a SwitchboardError a person can act on. */
export function microphoneError(e) {
  if (e instanceof SwitchboardError) return e;
  const name = (e && e.name) || '';
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
    return new SwitchboardError(
      'microphone-denied',
      'Microphone access was denied. Allow the microphone for this site (the icon in the address bar) and try again.',
      { cause: e },
    );
  }
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') {
    return new SwitchboardError('microphone-unavailable', 'No microphone was found. Plug one in or choose another in Settings.', { cause: e });
  }
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
    return new SwitchboardError('microphone-unavailable', 'The microphone could not be started: another application may be using it.', { cause: e });
  }
  return new SwitchboardError('microphone-unavailable', `The microphone could not be opened: ${(e && e.message) || e}`, { cause: e });
}

// ---------------------------------------------------------------------------------------
// Tones: ringtone, ringback and key clicks, generated with WebAudio (no audio files).

/**
 * Plays the phone's own sounds through an AudioContext. Browsers start an AudioContext
 * suspended until the user has interacted with the page; `Phone.unlockAudio()` (call it from
 * any click or key handler) resumes it, and `tones.blocked` says whether sound is still held back.
 */
export class Tones {
  constructor(contextOrGetter) {
    this._get = typeof contextOrGetter === 'function' ? contextOrGetter : () => contextOrGetter;
    this._loop = null;
    this.volume = 0.25;
  }

  get blocked() {
    const ctx = this._get();
    return !ctx || ctx.state !== 'running';
  }

  /** What is playing: `'ringtone'`, `'ringback'` or null. */
  get playing() {
    return this._loop ? this._loop.kind : null;
  }

  /** The incoming-call ring (a double ring every 3 s) until `stop()`. */
  ringtone() {
    // Two bursts of 0.4 s of 400+450 Hz, 0.2 s apart, then 2 s of silence.
    this._start('ringtone', 3.0, (t) => {
      this._burst([400, 450], t, 0.4);
      this._burst([400, 450], t + 0.6, 0.4);
    });
  }

  /** The "it is ringing at the other end" tone (440+480 Hz, 2 s on, 4 s off) until `stop()`. */
  ringback() {
    this._start('ringback', 6.0, (t) => this._burst([440, 480], t, 2.0, 0.5));
  }

  /** A short DTMF key tone for feedback. */
  key(digit) {
    const f = DTMF_FREQ[String(digit).toUpperCase()];
    const ctx = this._get();
    if (!f || !ctx || ctx.state !== 'running') return;
    this._burst(f, ctx.currentTime + 0.01, 0.12, 0.5);
  }

  /** Three falling beeps: the call ended. */
  hangup() {
    const ctx = this._get();
    if (!ctx || ctx.state !== 'running') return;
    const t = ctx.currentTime + 0.02;
    [620, 520, 420].forEach((hz, i) => this._burst([hz], t + i * 0.16, 0.12, 0.5));
  }

  stop() {
    if (this._loop) {
      clearInterval(this._loop.timer);
      for (const n of this._loop.nodes) {
        try {
          n.stop();
        } catch (_) {
          /* already stopped */
        }
      }
      this._loop = null;
    }
  }

  _start(kind, period, schedule) {
    if (this._loop && this._loop.kind === kind) return;
    this.stop();
    const loop = { kind, nodes: [], timer: null, next: 0 };
    this._loop = loop;
    const tick = () => {
      const ctx = this._get();
      if (!ctx || ctx.state !== 'running' || this._loop !== loop) return;
      if (loop.next < ctx.currentTime) loop.next = ctx.currentTime + 0.05;
      while (loop.next < ctx.currentTime + period) {
        this._nodes = loop.nodes;
        schedule(loop.next);
        this._nodes = null;
        loop.next += period;
      }
      loop.nodes = loop.nodes.filter((n) => !n._done);
    };
    loop.timer = setInterval(tick, 250);
    tick();
  }

  _burst(freqs, t, dur, gainScale = 1) {
    const ctx = this._get();
    if (!ctx) return;
    const g = ctx.createGain();
    const peak = (this.volume * gainScale) / freqs.length;
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(peak, t + 0.015);
    g.gain.setValueAtTime(peak, t + dur - 0.02);
    g.gain.linearRampToValueAtTime(0, t + dur);
    g.connect(ctx.destination);
    for (const hz of freqs) {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(g);
      o.start(t);
      o.stop(t + dur + 0.01);
      o.onended = () => {
        o._done = true;
        o.disconnect();
      };
      if (this._nodes) this._nodes.push(o);
    }
  }
}

const DTMF_FREQ = {
  1: [697, 1209], 2: [697, 1336], 3: [697, 1477], A: [697, 1633],
  4: [770, 1209], 5: [770, 1336], 6: [770, 1477], B: [770, 1633],
  7: [852, 1209], 8: [852, 1336], 9: [852, 1477], C: [852, 1633],
  '*': [941, 1209], 0: [941, 1336], '#': [941, 1477], D: [941, 1633],
};

// ---------------------------------------------------------------------------------------
// Calls

/**
 * One call, from the first ring to its end. Read its fields; change it through the Phone
 * (or the shortcuts below).
 *
 * state: 'calling' → 'ringing' → 'active' → 'ended'   (outgoing)
 *        'incoming' → 'accepting' → 'active' → 'ended' (incoming)
 */
export class Call {
  constructor(phone, direction, remote, extra) {
    this._phone = phone;
    this.id = ++Call._n;
    this.direction = direction; // 'outgoing' | 'incoming'
    this.remote = remote; // the other party's address as dialled or as the server sent it
    this.from = extra.from || null;
    this.to = extra.to || null;
    this.state = direction === 'outgoing' ? 'calling' : 'incoming';
    this.startedAt = new Date();
    this.answeredAt = null;
    this.endedAt = null;
    this.held = false; // we put the other side on hold
    this.remoteHeld = false; // the other side put us on hold
    this.muted = false;
    this.audioCodec = null; // the SIP side's codec
    this.browserCodec = null; // this browser's codec
    this.transcoding = null;
    this.cause = null; // why it ended: see Phone 'callended'
    this.reason = null; // the SIP reason or a sentence
    this.error = null; // the SwitchboardError when it failed on this side
    this.pc = null;
    this.localStream = null;
    this.remoteStream = null;
    this._sent = false; // invite/accept went out
  }

  /** The other party for people: display name, else address. */
  get remoteName() {
    return displayName(this.remote);
  }

  /** Seconds since it was answered (0 before; frozen once it ends). */
  get duration() {
    if (!this.answeredAt) return 0;
    return Math.max(0, Math.floor(((this.endedAt || new Date()) - this.answeredAt) / 1000));
  }

  get ended() {
    return this.state === 'ended';
  }

  hangup() {
    return this._phone.hangup();
  }

  answer(opts) {
    return this._phone.answer(opts);
  }

  reject(reason) {
    return this._phone.reject(reason);
  }

  hold(on = true) {
    return this._phone.hold(on);
  }

  mute(on = true) {
    return this._phone.mute(on);
  }

  sendDTMF(digits) {
    return this._phone.sendDTMF(digits);
  }

  toJSON() {
    const o = {};
    for (const k of ['id', 'direction', 'remote', 'from', 'to', 'state', 'startedAt', 'answeredAt', 'endedAt',
      'held', 'remoteHeld', 'muted', 'audioCodec', 'browserCodec', 'transcoding', 'cause', 'reason']) o[k] = this[k];
    o.error = this.error ? this.error.code : null;
    o.duration = this.duration;
    return o;
  }
}
Call._n = 0;

// ---------------------------------------------------------------------------------------
// The phone

// No STUN/TURN servers: the host candidates reach the server (ICE-lite), as they always have.
const PC_CONFIG = Object.freeze({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });

const CALL_EVENTS = ['ringing', 'accepted', 'rejected', 'invited', 'cancelled', 'byed', 'holded', 'dtmf', 'mediaFailed'];

/**
 * One SIP line driven from this page. Events are DOM events whose `detail` carries the data;
 * `phone.on(type, fn)` calls `fn(detail)` and returns a function that removes it.
 */
export class Phone extends EventTarget {
  constructor(options = {}) {
    super();
    this.options = {
      server: options.server || '',
      codecs: options.codecs || null,
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, ...(options.audio || {}) },
      inputDeviceId: options.inputDeviceId || '',
      outputDeviceId: options.outputDeviceId || '',
      connectTimeout: options.connectTimeout ?? 20000,
      requestTimeout: options.requestTimeout ?? 20000,
      iceGatheringTimeout: options.iceGatheringTimeout ?? 2000,
      prepareOffer: options.prepareOffer ?? true,
      preparedOfferMaxAge: options.preparedOfferMaxAge ?? 300000,
      keepalive: options.keepalive ?? 25000,
      reconnect: options.reconnect ?? false,
      debug: !!options.debug,
    };
    this._state = 'disconnected';
    this._ws = null;
    this._account = null;
    this._pending = new Map();
    this._nextId = 1;
    this._call = null;
    this._ctx = null;
    this._analysers = { local: null, remote: null };
    this._sources = { local: null, remote: null };
    this._keepaliveTimer = null;
    this._reconnectTimer = null;
    this._reconnectDelay = 1000;
    this._prepared = null; // the idle line's ready offer: see _prepare()
    this.registration = null; // last 'registration' event: { state, reason?, expires? }
    this.tones = new Tones(() => this._ctx);

    this._audio = options.audioElement || null;
    if (!this._audio && typeof document !== 'undefined') {
      this._audio = document.createElement('audio');
      this._audio.hidden = true;
      this._audio.setAttribute('data-switchboard', 'remote-audio');
      (document.body || document.documentElement).appendChild(this._audio);
    }
    if (this._audio) {
      this._audio.autoplay = true;
      this._audio.playsInline = true;
    }
    if (this.options.outputDeviceId) this.setOutputDevice(this.options.outputDeviceId).catch(() => {});

    if (typeof navigator !== 'undefined' && navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      navigator.mediaDevices.addEventListener('devicechange', () => this._emit('devicechange', {}));
    }
    if (typeof window !== 'undefined') {
      // A closing tab ends the call at once (the server would notice within seconds anyway).
      window.addEventListener('pagehide', () => this._closeSocket(1001, 'page closed'));
    }
  }

  // -- state ----------------------------------------------------------------------------

  /** 'disconnected' | 'connecting' | 'connected' | 'reconnecting' */
  get state() {
    return this._state;
  }

  get connected() {
    return this._state === 'connected';
  }

  /** The current call (a Call), or null. */
  get currentCall() {
    return this._call;
  }

  /** The account given to `connect()`, without the password: `{ aor, authname, displayName, anonymous }`. */
  get account() {
    if (!this._account) return null;
    const { password, ...rest } = this._account;
    return { ...rest, anonymous: !password };
  }

  /** The `<audio>` element that plays the other party. */
  get audioElement() {
    return this._audio;
  }

  on(type, fn) {
    const h = (e) => fn(e.detail, e);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  once(type, fn) {
    const h = (e) => fn(e.detail, e);
    this.addEventListener(type, h, { once: true });
    return () => this.removeEventListener(type, h);
  }

  // -- connection -----------------------------------------------------------------------

  /**
   * Opens the line: WebSocket, then `connect` (the server registers with the SIP registrar).
   * Resolves when registered; rejects with a SwitchboardError:
   *   'refused' (err.reason is the SIP reason, e.g. "403 Forbidden"), 'unreachable', 'timeout',
   *   'invalid', 'state'.
   */
  async connect(account) {
    if (this._state !== 'disconnected') throw new SwitchboardError('state', 'Already connected or connecting');
    const aor = String((account && account.aor) || '').trim().replace(/^sips?:/i, '');
    if (!/^[^@\s]+@[^@\s]+$/.test(aor)) {
      throw new SwitchboardError('invalid', 'Enter your address as user@domain, for example alice@example.com');
    }
    this._account = {
      aor,
      authname: (account.authname || '').trim(),
      password: account.password || '',
      displayName: (account.displayName || '').trim(),
      rate: account.rate,
    };
    this._closing = false;
    this._reconnectDelay = 1000;
    return this._open(false);
  }

  /** Alias of `connect`. */
  register(account) {
    return this.connect(account);
  }

  /** Ends any call, unregisters and closes the line. */
  disconnect() {
    this._closing = true;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (this._call) this._endCall(this._call, 'hangup', 'You hung up');
    this._dropPrepared();
    this._closeSocket(1000, 'bye');
    this._setState('disconnected', { reason: 'signed out' });
  }

  /** Alias of `disconnect`. */
  unregister() {
    this.disconnect();
  }

  _open(reconnecting) {
    return new Promise((resolve, reject) => {
      const acc = this._account;
      let url;
      try {
        url = phoneUrl(this.options.server, acc.aor);
      } catch (e) {
        reject(e);
        return;
      }
      this._setState(reconnecting ? 'reconnecting' : 'connecting');
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        this._setState('disconnected');
        reject(new SwitchboardError('unreachable', `Cannot open ${url}: ${e.message}`));
        return;
      }
      this._ws = ws;
      const attempt = { resolve, reject, opened: false, settled: false, refused: null, url };
      ws._attempt = attempt;
      attempt.timer = setTimeout(() => {
        if (attempt.settled) return;
        this._failAttempt(ws, new SwitchboardError('timeout', 'The server did not answer the registration in time'));
        try {
          ws.close(1000, 'timeout');
        } catch (_) {
          /* closing */
        }
      }, this.options.connectTimeout);
      ws.onopen = () => {
        attempt.opened = true;
        const msg = { type: 'connect', authpass: acc.password };
        if (acc.authname) msg.authname = acc.authname;
        if (acc.displayName) msg.displayname = acc.displayName;
        if (acc.rate) msg.rate = acc.rate;
        this._sendRaw(ws, msg);
      };
      ws.onmessage = (ev) => this._onMessage(ws, ev);
      ws.onclose = (ev) => this._onClose(ws, ev);
      ws.onerror = () => {
        /* onclose follows with the details */
      };
    });
  }

  _failAttempt(ws, err) {
    const a = ws._attempt;
    if (!a || a.settled) return;
    a.settled = true;
    clearTimeout(a.timer);
    a.reject(err);
  }

  _closeSocket(code, reason) {
    const ws = this._ws;
    if (!ws) return;
    this._ws = null;
    this._stopKeepalive();
    try {
      ws.close(code, reason);
    } catch (_) {
      /* closed */
    }
  }

  _onClose(ws, ev) {
    const a = ws._attempt;
    if (a && !a.settled) {
      let err;
      if (a.refused !== null) {
        err = new SwitchboardError('refused', `Registration refused: ${a.refused}`, { reason: a.refused });
      } else if (!a.opened) {
        err = new SwitchboardError(
          'unreachable',
          `Could not reach the phone server at ${a.url.replace(/\/phone\/.*$/, '')} (it is down, refused this page's origin, or has too many connections)`,
          { closeCode: ev.code },
        );
      } else if (ev.code === 4408) {
        err = new SwitchboardError('timeout', 'The server closed the connection: connect timeout');
      } else {
        err = new SwitchboardError('unreachable', `The server closed the connection${ev.reason ? ': ' + ev.reason : ''} (code ${ev.code})`, { closeCode: ev.code });
      }
      this._failAttempt(ws, err);
    }
    if (ws !== this._ws && this._ws !== null) return; // an older socket
    const wasConnected = this._state === 'connected';
    this._ws = null;
    this._stopKeepalive();
    for (const [, p] of this._pending) p.reject(new SwitchboardError('closed', 'The connection to the server was lost'));
    this._pending.clear();
    if (this._call) this._endCall(this._call, 'disconnected', 'The connection to the server was lost');
    this._dropPrepared();
    if (this._closing) return;
    if (wasConnected) {
      this._emit('disconnected', { code: ev.code, reason: ev.reason || 'connection lost' });
    }
    const refused = a && a.refused !== null;
    if (this.options.reconnect && !refused && (wasConnected || this._state === 'reconnecting')) {
      this._setState('reconnecting', { reason: 'connection lost' });
      const delay = this._reconnectDelay;
      this._reconnectDelay = Math.min(this._reconnectDelay * 2, 30000);
      this._emit('reconnecting', { delay });
      this._reconnectTimer = setTimeout(() => {
        this._reconnectTimer = null;
        if (this._closing) return;
        this._open(true).catch(() => {
          /* _onClose schedules the next try */
        });
      }, delay);
    } else {
      this._setState('disconnected', { reason: ev.reason || 'connection closed' });
    }
  }

  _setState(state, extra) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this._emit('statechange', { state, previous, ...(extra || {}) });
  }

  _startKeepalive() {
    this._stopKeepalive();
    if (!this.options.keepalive) return;
    this._keepaliveTimer = setInterval(() => {
      if (this._state !== 'connected') return;
      const ws = this._ws;
      this.rpc('ping', {}, { timeout: 10000 }).catch((e) => {
        if (e.code === 'timeout' && ws === this._ws) {
          this._log('keepalive: no answer, closing');
          try {
            ws.close(4000, 'keepalive');
          } catch (_) {
            /* closed */
          }
          // A dead TCP connection may take long to report close: act now.
          this._onClose(ws, { code: 4000, reason: 'the server stopped answering' });
        }
      });
    }, this.options.keepalive);
  }

  _stopKeepalive() {
    clearInterval(this._keepaliveTimer);
    this._keepaliveTimer = null;
  }

  // -- messages -------------------------------------------------------------------------

  _sendRaw(ws, msg) {
    const text = JSON.stringify(msg);
    if (this.options.debug) {
      const shown = JSON.stringify(msg.authpass ? { ...msg, authpass: '***' } : msg); // never log the password
      this._log('→', shown.length > 300 ? shown.slice(0, 300) + '…' : shown);
    }
    ws.send(text);
  }

  /**
   * Sends one request of the API and resolves with its result (`{type:'result', id, ...}`),
   * or rejects with a SwitchboardError ('request' with the server's error text, 'timeout',
   * 'closed', 'state').
   */
  rpc(type, fields = {}, { timeout } = {}) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1 || (this._state !== 'connected' && type !== 'connect')) {
      return Promise.reject(new SwitchboardError('state', 'Not connected to the phone server'));
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new SwitchboardError('timeout', `The server did not answer "${type}" in time`));
      }, timeout ?? this.options.requestTimeout);
      this._pending.set(id, {
        type,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this._sendRaw(ws, { type, id, ...fields });
    });
  }

  _onMessage(ws, ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (_) {
      this._log('bad message from server', ev.data);
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    this._log('←', typeof ev.data === 'string' && ev.data.length > 300 ? ev.data.slice(0, 300) + '…' : ev.data);
    this._emit('message', { message: msg });
    const a = ws._attempt;
    switch (msg.type) {
      case 'connected':
        if (a && !a.settled) {
          a.settled = true;
          clearTimeout(a.timer);
          const reconnected = this._state === 'reconnecting';
          this._reconnectDelay = 1000;
          this._setState('connected');
          this._startKeepalive();
          this._prepare();
          this._emit('connected', { reconnected });
          a.resolve({ reconnected });
        }
        return;
      case 'refused':
        if (a) a.refused = msg.reason || 'refused';
        this._emit('refused', { reason: msg.reason || 'refused' });
        this._failAttempt(ws, new SwitchboardError('refused', `Registration refused: ${msg.reason || 'no reason given'}`, { reason: msg.reason }));
        return;
      case 'result': {
        const p = this._pending.get(msg.id);
        if (!p) return;
        this._pending.delete(msg.id);
        if (msg.error) p.reject(new SwitchboardError('request', msg.error, { request: p.type }));
        else p.resolve(msg);
        return;
      }
      case 'error': {
        const p = msg.id != null ? this._pending.get(msg.id) : null;
        if (p) {
          this._pending.delete(msg.id);
          p.reject(new SwitchboardError('request', msg.error, { request: p.type }));
        }
        this._emit('servererror', { error: msg.error, id: msg.id ?? null });
        return;
      }
      case 'registration':
        this.registration = { state: msg.state, reason: msg.reason || null, expires: msg.expires ?? null };
        this._emit('registration', { ...this.registration });
        return;
      default:
        if (CALL_EVENTS.includes(msg.type)) this._onCallEvent(msg);
    }
  }

  _onCallEvent(msg) {
    let call = this._call;
    switch (msg.type) {
      case 'invited': {
        if (call) this._endCall(call, 'failed', 'Replaced by a new incoming call');
        call = new Call(this, 'incoming', msg.from || '', { from: msg.from, to: msg.to });
        this._call = call;
        this._emit('callstatechange', { call, state: call.state, previous: null });
        this._emit('invited', { call, from: msg.from, to: msg.to });
        return;
      }
      case 'ringing':
        if (call && call.state === 'calling') this._setCallState(call, 'ringing');
        this._emit('ringing', { call, reason: msg.reason || '' });
        return;
      case 'accepted':
        if (call) {
          call.audioCodec = msg.audioCodec ?? null;
          call.browserCodec = msg.browserCodec ?? null;
          call.transcoding = msg.transcoding ?? null;
          call.answeredAt = new Date();
          this._applyTrackState(call);
          this._setCallState(call, 'active');
        }
        this._emit('accepted', {
          call, audioCodec: msg.audioCodec ?? null, videoCodec: msg.videoCodec ?? null,
          browserCodec: msg.browserCodec ?? null, transcoding: msg.transcoding ?? null,
        });
        return;
      case 'rejected':
        this._emit('rejected', { call, reason: msg.reason || '' });
        if (call && call.direction === 'outgoing' && call.state !== 'active') {
          this._endCall(call, 'rejected', msg.reason || 'Call rejected');
        }
        return;
      case 'cancelled':
        this._emit('cancelled', { call, from: msg.from, to: msg.to });
        if (call && call.direction === 'incoming' && call.state !== 'active') {
          this._endCall(call, 'cancelled', 'The caller hung up');
        }
        return;
      case 'byed':
        this._emit('byed', { call });
        if (call) this._endCall(call, 'remote-hangup', 'The other party hung up');
        return;
      case 'holded':
        if (call) {
          call.remoteHeld = !!msg.hold;
          this._emit('callupdate', { call });
        }
        this._emit('holded', { call, hold: !!msg.hold });
        return;
      case 'dtmf':
        this._emit('dtmf', { call, digit: msg.digit });
        return;
      case 'mediaFailed':
        this._emit('mediaFailed', { call, reason: msg.reason || '' });
        if (call) this._endCall(call, 'failed', `The call's audio connection failed: ${msg.reason || 'no reason given'}`);
        return;
      default:
    }
  }

  // -- calls ----------------------------------------------------------------------------

  /**
   * Calls `dest` (`bob@example.com`, `sip:bob@example.com`, `"Bob" <sip:bob@example.com>`, or a
   * bare user or number at your own domain). Resolves with the Call once the invitation is on
   * its way; how it goes arrives as events ('ringing', 'accepted', 'rejected', 'callended').
   * Rejects with a SwitchboardError when the call could not be placed ('microphone-denied',
   * 'microphone-unavailable', 'state', 'invalid', 'request').
   * opts: { codecs, allowNoMicrophone } — with allowNoMicrophone a missing or refused
   * microphone makes a listen-only call instead of failing.
   */
  async call(dest, opts = {}) {
    this._requireConnected();
    if (this._call) throw new SwitchboardError('state', 'There is already a call: hang it up first');
    const target = String(dest ?? '').trim();
    if (!target) throw new SwitchboardError('invalid', 'Enter a number or an address to call');
    const call = new Call(this, 'outgoing', target, {});
    this._call = call;
    this._emit('callstatechange', { call, state: call.state, previous: null });
    // A refused or impossible microphone fails before anything is sent (the slow path).
    const prepared = this._micMayOpen() ? await this._takePrepared() : null;
    if (prepared) return this._callPrepared(call, target, prepared, opts);
    let sent = false;
    try {
      const stream = await this._microphone(call, opts);
      if (call.ended) return call;
      const offer = await this._offer(call, stream);
      if (call.ended) return call;
      const codecs = opts.codecs || this.options.codecs;
      const req = { dest: target, sdp: offer };
      if (codecs) req.codecs = codecs;
      call._sent = true;
      sent = true;
      const res = this.rpc('invite', req);
      const r = await res;
      if (call.ended) return call;
      await call.pc.setRemoteDescription({ type: 'answer', sdp: r.sdp });
      return call;
    } catch (e) {
      if (call.ended) return call;
      const err = e instanceof SwitchboardError ? e : new SwitchboardError('webrtc', `The call could not be set up: ${e.message || e}`, { cause: e });
      if (sent && err.code !== 'request') this.rpc('bye').catch(() => {});
      this._endCall(call, 'failed', err.message, err);
      throw err;
    }
  }

  // The fast path of `call`: the invitation leaves at once with the offer prepared while the
  // line was idle; the microphone opens meanwhile, and its track joins the offer's audio
  // sender by replaceTrack (no renegotiation). A microphone that fails after the invitation
  // is out hangs the call up (CANCEL or BYE), unless opts.allowNoMicrophone.
  async _callPrepared(call, target, prepared, opts) {
    const pc = prepared.pc;
    call.pc = pc;
    this._wirePc(call, pc);
    if (call.ended) {
      pc.close();
      return call;
    }
    const codecs = opts.codecs || this.options.codecs;
    const req = { dest: target, sdp: prepared.sdp };
    if (codecs) req.codecs = codecs;
    call._sent = true;
    const invited = this.rpc('invite', req);
    const microphone = this._microphone(call, opts).then((stream) => this._attachMicrophone(call, pc, stream));
    const answered = invited.then((r) => (call.ended ? null : pc.setRemoteDescription({ type: 'answer', sdp: r.sdp })));
    try {
      await Promise.all([microphone, answered]);
      return call;
    } catch (e) {
      // The other promise may still settle; its result no longer matters.
      microphone.catch(() => {});
      answered.catch(() => {});
      if (call.ended) return call;
      const err = e instanceof SwitchboardError ? e : new SwitchboardError('webrtc', `The call could not be set up: ${e.message || e}`, { cause: e });
      if (err.code !== 'request') this.rpc('bye').catch(() => {});
      this._endCall(call, 'failed', err.message, err);
      throw err;
    }
  }

  /** Alias of `call`. */
  invite(dest, opts) {
    return this.call(dest, opts);
  }

  /**
   * Answers the ringing incoming call. Resolves once the answer is sent ('accepted' follows).
   * If the microphone cannot be opened the call keeps ringing (so it can still be rejected)
   * and this rejects with 'microphone-denied' / 'microphone-unavailable'.
   * opts: { codecs, allowNoMicrophone }
   */
  async answer(opts = {}) {
    this._requireConnected();
    const call = this._call;
    if (!call || call.state !== 'incoming') throw new SwitchboardError('state', 'There is no incoming call to answer');
    this._setCallState(call, 'accepting');
    let stream;
    try {
      stream = await this._microphone(call, opts);
    } catch (e) {
      if (!call.ended) this._setCallState(call, 'incoming');
      throw e;
    }
    try {
      if (call.ended) {
        if (stream) for (const t of stream.getTracks()) t.stop();
        return call;
      }
      // The offer prepared while the line was idle, with the microphone's track put in.
      const prepared = await this._takePrepared();
      if (call.ended) {
        if (prepared) prepared.pc.close();
        if (stream) for (const t of stream.getTracks()) t.stop();
        return call;
      }
      let offer;
      if (prepared) {
        call.pc = prepared.pc;
        this._wirePc(call, prepared.pc);
        await this._attachMicrophone(call, prepared.pc, stream);
        offer = prepared.sdp;
      } else {
        offer = await this._offer(call, stream);
      }
      if (call.ended) return call;
      const codecs = opts.codecs || this.options.codecs;
      const req = { sdp: offer };
      if (codecs) req.codecs = codecs;
      call._sent = true;
      const r = await this.rpc('accept', req);
      if (call.ended) return call;
      await call.pc.setRemoteDescription({ type: 'answer', sdp: r.sdp });
      return call;
    } catch (e) {
      if (call.ended) return call;
      const err = e instanceof SwitchboardError ? e : new SwitchboardError('webrtc', `The call could not be answered: ${e.message || e}`, { cause: e });
      if (err.code !== 'request') this.rpc('bye').catch(() => {});
      this._endCall(call, 'failed', err.code === 'request' ? `The call could not be answered: ${err.message}` : err.message, err);
      throw err;
    }
  }

  /** Alias of `answer`. */
  accept(opts) {
    return this.answer(opts);
  }

  /** Refuses the ringing incoming call: no reason → "603 Decline"; or e.g. "486 Busy Here". */
  async reject(reason) {
    this._requireConnected();
    const call = this._call;
    if (!call || (call.state !== 'incoming' && call.state !== 'accepting')) {
      throw new SwitchboardError('state', 'There is no incoming call to reject');
    }
    this._endCall(call, 'declined', reason || '603 Decline');
    const req = {};
    if (reason) req.reason = reason;
    await this.rpc('reject', req);
  }

  /** Ends the call whatever its state: cancels, declines or hangs up. Nothing happens without one. */
  async hangup() {
    const call = this._call;
    if (!call) return;
    // Not answered yet (or the answer is not out): decline it.
    if (call.state === 'incoming' || (call.state === 'accepting' && !call._sent)) return this.reject();
    const sent = call._sent;
    this._endCall(call, 'hangup', 'You hung up');
    if (sent && this._state === 'connected') await this.rpc('bye').catch(() => {});
  }

  /** Alias of `hangup`. */
  bye() {
    return this.hangup();
  }

  /** Puts the other party on hold (re-INVITE) or resumes; the microphone is silenced while held. */
  async hold(on = true) {
    this._requireConnected();
    const call = this._call;
    if (!call || call.state !== 'active') throw new SwitchboardError('state', 'Hold needs an active call');
    await this.rpc('hold', { hold: !!on });
    call.held = !!on;
    this._applyTrackState(call);
    this._emit('callupdate', { call });
  }

  /** Silences (true) or restores (false) the microphone in this call. Local only. */
  mute(on = true) {
    const call = this._call;
    if (!call) return;
    call.muted = !!on;
    this._applyTrackState(call);
    this._emit('callupdate', { call });
  }

  /**
   * Sends touch-tones ('0'-'9', '*', '#', 'A'-'D'; several in order) to the other party as
   * RFC 4733 events (or SIP INFO), one `sendDTMF` request per digit.
   */
  async sendDTMF(digits) {
    this._requireConnected();
    const call = this._call;
    if (!call || call.state !== 'active') throw new SwitchboardError('state', 'Touch-tones need an active call');
    const s = String(digits).toUpperCase();
    for (const d of s) {
      if (!DTMF_DIGITS.includes(d)) throw new SwitchboardError('invalid', `"${d}" is not a touch-tone digit`);
    }
    for (const d of s) await this.rpc('sendDTMF', { digit: d });
  }

  _requireConnected() {
    if (this._state !== 'connected') throw new SwitchboardError('state', 'Not connected to the phone server');
  }

  _setCallState(call, state) {
    if (call.state === state) return;
    const previous = call.state;
    call.state = state;
    this._emit('callstatechange', { call, state, previous });
  }

  _endCall(call, cause, reason, error) {
    if (call.ended) return;
    call.endedAt = new Date();
    call.cause = cause;
    call.reason = reason;
    call.error = error || null;
    const previous = call.state;
    call.state = 'ended';
    if (this._call === call) this._call = null;
    if (call.pc) {
      try {
        call.pc.close();
      } catch (_) {
        /* closed */
      }
    }
    if (call.localStream) for (const t of call.localStream.getTracks()) t.stop();
    if (this._audio && this._audio.srcObject) {
      this._audio.srcObject = null;
    }
    this._detachAnalyser('local');
    this._detachAnalyser('remote');
    this._emit('callstatechange', { call, state: 'ended', previous });
    this._emit('callended', { call, cause, reason, error: call.error });
    this._prepare(); // the next call's offer
  }

  async _microphone(call, opts) {
    try {
      return await this._getUserMedia();
    } catch (e) {
      const err = microphoneError(e);
      if (opts.allowNoMicrophone) {
        this._emit('microphoneerror', { call, error: err });
        return null;
      }
      throw err; // the caller ends the call (outgoing) or leaves it ringing (incoming)
    }
  }

  async _getUserMedia() {
    if (!microphoneAvailable()) {
      const secure = typeof window === 'undefined' || window.isSecureContext;
      throw new SwitchboardError(
        'microphone-unavailable',
        secure ? 'This browser cannot use a microphone.' : 'The microphone only works on a secure page: open the phone over https:// (or on localhost).',
      );
    }
    const audio = { ...this.options.audio };
    if (this.options.inputDeviceId) audio.deviceId = { exact: this.options.inputDeviceId };
    try {
      return await navigator.mediaDevices.getUserMedia({ audio, video: false });
    } catch (e) {
      if (e && e.name === 'OverconstrainedError' && audio.deviceId) {
        // The chosen microphone is gone: take the default one.
        delete audio.deviceId;
        return navigator.mediaDevices.getUserMedia({ audio, video: false });
      }
      throw e;
    }
  }

  async _offer(call, stream) {
    const pc = new RTCPeerConnection(PC_CONFIG);
    call.pc = pc;
    if (stream) {
      call.localStream = stream;
      const track = stream.getAudioTracks()[0];
      pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
      this._applyTrackState(call);
      this._attachAnalyser('local', stream);
      this._emit('localstream', { call, stream });
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    this._wirePc(call, pc);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await this._gathered(pc);
    return pc.localDescription.sdp;
  }

  _wirePc(call, pc) {
    pc.ontrack = (e) => {
      if (call.ended) return;
      const remote = (e.streams && e.streams[0]) || new MediaStream([e.track]);
      call.remoteStream = remote;
      if (this._audio) {
        this._audio.srcObject = remote;
        const p = this._audio.play();
        if (p && p.catch) p.catch((err) => this._log('remote audio play():', err.message));
      }
      this._attachAnalyser('remote', remote);
      this._emit('remotestream', { call, stream: remote });
    };
    pc.onconnectionstatechange = () => {
      this._emit('mediastate', { call, state: pc.connectionState });
    };
  }

  // Puts the microphone's track (stream may be null: listen-only) on the prepared offer's
  // audio sender.
  async _attachMicrophone(call, pc, stream) {
    if (!stream) return;
    if (call.ended) {
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    call.localStream = stream; // _endCall stops it from now on
    const transceiver = pc.getTransceivers().find((t) => t.receiver.track.kind === 'audio');
    await transceiver.sender.replaceTrack(stream.getAudioTracks()[0]);
    if (call.ended) return;
    this._applyTrackState(call);
    this._attachAnalyser('local', stream);
    this._emit('localstream', { call, stream });
  }

  // -- the prepared offer ---------------------------------------------------------------
  //
  // Building an offer takes the browser ~100-200 ms (peer connection, createOffer, ICE
  // gathering), the microphone as much again. So while the line is idle it keeps one peer
  // connection ready: an audio transceiver without a track, its offer set as the local
  // description, host candidates gathered. A call sends that offer at once and opens the
  // microphone meanwhile (permission is still asked at the click); answering opens the
  // microphone first, as before, and then needs no offer time. The server's answer applies
  // to it however old it is (it is ICE-lite and the browser starts the checks after the
  // answer). Made before the microphone was ever allowed, its host candidates are mDNS names
  // (Chromium hides the addresses until then); the server does not need them: the browser's
  // checks arrive from its real address, which the server answers. It is made on connect and
  // after each call, remade every preparedOfferMaxAge (the host's addresses may change), and
  // closed on disconnect.

  _prepare() {
    if (!this.options.prepareOffer || typeof RTCPeerConnection === 'undefined') return;
    if (this._state !== 'connected' || !this._ws || this._closing || this._call) return;
    this._dropPrepared();
    const prep = { pc: null };
    this._prepared = prep;
    prep.ready = (async () => {
      const pc = new RTCPeerConnection(PC_CONFIG);
      prep.pc = pc;
      pc.addTransceiver('audio', { direction: 'sendrecv' });
      await pc.setLocalDescription(await pc.createOffer());
      await this._gathered(pc);
      return true;
    })().catch((e) => {
      this._log('preparing an offer failed:', e && e.message);
      if (prep.pc) prep.pc.close();
      if (this._prepared === prep) this._prepared = null;
      return false;
    });
    this._prepareTimer = setTimeout(() => {
      this._prepareTimer = null;
      this._prepare();
    }, this.options.preparedOfferMaxAge);
    this._watchMicPermission();
  }

  _dropPrepared() {
    clearTimeout(this._prepareTimer);
    this._prepareTimer = null;
    const prep = this._prepared;
    this._prepared = null;
    if (prep && prep.pc) prep.pc.close();
  }

  // The prepared peer connection and its offer ({ pc, sdp }), or null; waits for one still
  // being made (quicker than making another).
  async _takePrepared() {
    const prep = this._prepared;
    if (!prep) return null;
    this._prepared = null;
    clearTimeout(this._prepareTimer);
    this._prepareTimer = null;
    const ok = await prep.ready;
    const pc = prep.pc;
    // Without a candidate (no usable interface when it was made) the browser could not
    // reach the server: make a fresh one after the microphone opens, as without preparing.
    const sdp = ok && pc && pc.signalingState === 'have-local-offer' && pc.localDescription ? pc.localDescription.sdp : '';
    if (!/^a=candidate:/m.test(sdp)) {
      if (pc) pc.close();
      return null;
    }
    return { pc, sdp };
  }

  // False when the microphone is known to be refused or impossible: then a call takes the
  // slow path, which fails before anything is sent.
  _micMayOpen() {
    if (!microphoneAvailable()) return false;
    return !(this._micPermission && this._micPermission.state === 'denied');
  }

  _watchMicPermission() {
    if (this._micPermission !== undefined) return;
    this._micPermission = null;
    if (typeof navigator === 'undefined' || !navigator.permissions || !navigator.permissions.query) return;
    navigator.permissions.query({ name: 'microphone' }).then(
      (status) => {
        this._micPermission = status; // its state follows the user's choices
      },
      () => {
        /* not queryable in this browser: assume it may open */
      },
    );
  }

  _gathered(pc) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        pc.removeEventListener('icecandidate', cand);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === 'complete') done();
      };
      const cand = (e) => {
        if (!e.candidate) done();
      };
      // No STUN/TURN: host candidates come within milliseconds. Never wait for long.
      const timer = setTimeout(done, this.options.iceGatheringTimeout);
      pc.addEventListener('icegatheringstatechange', check);
      pc.addEventListener('icecandidate', cand);
    });
  }

  _applyTrackState(call) {
    if (!call.localStream) return;
    const on = !call.muted && !call.held;
    for (const t of call.localStream.getAudioTracks()) t.enabled = on;
  }

  // -- devices --------------------------------------------------------------------------

  /** Chooses the microphone (a deviceId from `listDevices()`; '' for the default), also mid-call. */
  async setInputDevice(deviceId) {
    this.options.inputDeviceId = deviceId || '';
    const call = this._call;
    if (!call || !call.pc || !call.localStream) return;
    const stream = await this._getUserMedia().catch((e) => {
      throw microphoneError(e);
    });
    const track = stream.getAudioTracks()[0];
    const sender = call.pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
    if (sender) await sender.replaceTrack(track);
    for (const t of call.localStream.getTracks()) t.stop();
    call.localStream = stream;
    this._applyTrackState(call);
    this._attachAnalyser('local', stream);
    this._emit('localstream', { call, stream });
  }

  /** Chooses the loudspeaker (where `setSinkId` exists). Rejects where it does not. */
  async setOutputDevice(deviceId) {
    this.options.outputDeviceId = deviceId || '';
    if (!this._audio || !outputSelectable()) {
      throw new SwitchboardError('unsupported', 'This browser cannot choose the audio output device');
    }
    await this._audio.setSinkId(deviceId || '');
    if (this._ctx && typeof this._ctx.setSinkId === 'function') {
      await this._ctx.setSinkId(deviceId || '').catch(() => {});
    }
  }

  // -- audio: context, levels -----------------------------------------------------------

  /** The AudioContext used for tones and level meters (created on first use). */
  audioContext() {
    if (!this._ctx && typeof AudioContext !== 'undefined') {
      this._ctx = new AudioContext({ latencyHint: 'interactive' });
      if (this.options.outputDeviceId && typeof this._ctx.setSinkId === 'function') {
        this._ctx.setSinkId(this.options.outputDeviceId).catch(() => {});
      }
      this._ctx.onstatechange = () => this._emit('audiostate', { state: this._ctx.state });
    }
    return this._ctx;
  }

  /** True when sound can play (the browser's autoplay rule has been satisfied). */
  get audioUnlocked() {
    return !!this._ctx && this._ctx.state === 'running';
  }

  /**
   * Resumes audio after a user gesture (call it from a click or key handler). Browsers keep
   * pages silent until the user has interacted with them; until then the ringtone cannot play.
   * Resolves to true when sound is allowed.
   */
  async unlockAudio() {
    const ctx = this.audioContext();
    if (!ctx) return false;
    if (ctx.state !== 'running') {
      try {
        await ctx.resume();
      } catch (_) {
        /* still blocked */
      }
    }
    if (this._audio && this._audio.srcObject && this._audio.paused) this._audio.play().catch(() => {});
    return ctx.state === 'running';
  }

  /** An AnalyserNode on the microphone ('local') or the other party ('remote'), or null. */
  getAnalyser(which) {
    return this._analysers[which] || null;
  }

  /** The level of 'local' (microphone) or 'remote' audio right now, 0..1 (RMS, scaled). */
  getLevel(which) {
    const an = this._analysers[which];
    if (!an) return 0;
    const buf = this._levelBuf && this._levelBuf.length === an.fftSize ? this._levelBuf : (this._levelBuf = new Float32Array(an.fftSize));
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    const rms = Math.sqrt(sum / buf.length);
    // -60 dBFS .. 0 dBFS → 0..1
    const db = 20 * Math.log10(rms + 1e-9);
    return Math.max(0, Math.min(1, (db + 60) / 60));
  }

  _attachAnalyser(which, stream) {
    this._detachAnalyser(which);
    const ctx = this.audioContext();
    if (!ctx || !stream || !stream.getAudioTracks().length) return;
    try {
      const src = ctx.createMediaStreamSource(stream);
      const an = ctx.createAnalyser();
      an.fftSize = 2048;
      an.smoothingTimeConstant = 0.3;
      src.connect(an);
      this._sources[which] = src;
      this._analysers[which] = an;
    } catch (e) {
      this._log('analyser:', e.message);
    }
  }

  _detachAnalyser(which) {
    if (this._sources[which]) {
      try {
        this._sources[which].disconnect();
      } catch (_) {
        /* gone */
      }
    }
    this._sources[which] = null;
    this._analysers[which] = null;
  }

  /** The call's WebRTC statistics, summarised: codec, packets, loss, jitter, round trip. */
  async getStats() {
    const call = this._call;
    if (!call || !call.pc) return null;
    const report = await call.pc.getStats();
    const out = { codec: null, packetsSent: 0, packetsReceived: 0, packetsLost: 0, jitterMs: null, rttMs: null, bytesSent: 0, bytesReceived: 0 };
    const codecs = new Map();
    report.forEach((s) => {
      if (s.type === 'codec') codecs.set(s.id, s);
    });
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'audio') {
        out.packetsSent += s.packetsSent || 0;
        out.bytesSent += s.bytesSent || 0;
        const c = codecs.get(s.codecId);
        if (c) out.codec = `${c.mimeType.replace(/^audio\//, '')}/${c.clockRate}`;
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.packetsReceived += s.packetsReceived || 0;
        out.packetsLost += s.packetsLost || 0;
        out.bytesReceived += s.bytesReceived || 0;
        if (s.jitter != null) out.jitterMs = Math.round(s.jitter * 1000);
      } else if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime != null) {
        out.rttMs = Math.round(s.currentRoundTripTime * 1000);
      }
    });
    return out;
  }

  // -- misc -----------------------------------------------------------------------------

  _emit(type, detail) {
    try {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    } catch (e) {
      this._log('event handler failed:', e);
    }
  }

  _log(...a) {
    if (this.options.debug) console.debug('[switchboard]', ...a);
  }
}
