// The Switchboard web phone page. Everything it does goes through the SDK (./switchboard.js);
// this file is only the user interface. See docs/sdk.md.

import {
  Phone, listDevices, outputSelectable, microphoneAvailable, microphoneError, parseAddress, VERSION,
} from './switchboard.js';

const $ = (id) => document.getElementById(id);
const app = $('app');
const params = new URLSearchParams(location.search);

const store = {
  get(key, fallback) {
    try {
      const v = localStorage.getItem(key);
      return v === null ? fallback : JSON.parse(v);
    } catch (_) {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch (_) {
      /* storage full or disabled: the phone still works */
    }
  },
  remove(key) {
    try {
      localStorage.removeItem(key);
    } catch (_) {
      /* disabled */
    }
  },
};

const ACCOUNT_KEY = 'switchboard.account';
const PREFS_KEY = 'switchboard.prefs';
const HISTORY_MAX = 50;
const prefs = store.get(PREFS_KEY, {});

const phone = new Phone({
  reconnect: true,
  inputDeviceId: prefs.input || '',
  outputDeviceId: outputSelectable() ? prefs.output || '' : '',
  debug: params.has('debug'),
});
window.app = { phone, VERSION };

let tab = 'keypad';
let linger = null; // { call, timer }: an ended call stays on screen briefly with its outcome
let showKeys = false;
let showDevices = false;
let dtmfSent = '';
let meterFrame = 0;
let micTest = null; // { stream, source, analyser }
let titleTimer = null;
let notification = null;
let missed = 0;

// ---------------------------------------------------------------------------------------
// Small UI helpers

function toast(text, kind = '') {
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.textContent = text;
  $('toasts').appendChild(el);
  setTimeout(() => el.remove(), kind === 'error' ? 6000 : 3500);
}

const banners = new Map();
function banner(id, kind, text, opts = {}) {
  let el = banners.get(id);
  if (!text) {
    if (el) el.remove();
    banners.delete(id);
    return;
  }
  if (!el) {
    el = document.createElement('div');
    el.dataset.banner = id;
    $('banners').appendChild(el);
    banners.set(id, el);
  }
  el.className = `banner ${kind}`;
  el.innerHTML = '';
  const icon = svgIcon(kind === 'incoming' ? 'i-phone' : kind === 'error' ? 'i-alert' : 'i-bell');
  const t = document.createElement('div');
  t.className = 'text';
  t.textContent = text;
  el.append(icon, t);
  if (opts.action) {
    const b = document.createElement('button');
    b.className = 'action';
    b.type = 'button';
    b.textContent = opts.action.label;
    b.onclick = opts.action.run;
    el.append(b);
  }
  if (opts.dismiss !== false) {
    const x = document.createElement('button');
    x.className = 'close';
    x.type = 'button';
    x.setAttribute('aria-label', 'Dismiss');
    x.append(svgIcon('i-close'));
    x.onclick = () => banner(id);
    el.append(x);
  }
}

function svgIcon(name) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  const use = document.createElementNS('http://www.w3.org/2000/svg', 'use');
  use.setAttribute('href', `#${name}`);
  svg.append(use);
  return svg;
}

function initials(name) {
  let text = String(name);
  if (/^[^\s@]+@/.test(text)) text = text.split('@')[0]; // an address: its user
  if (/^[+\d\s\-().]+$/.test(text)) return '#'; // a number
  const words = text.replace(/[^\p{L}\p{N} ]/gu, ' ').trim().split(/\s+/).filter(Boolean);
  if (!words.length) return '#';
  if (words.length === 1) return words[0].slice(0, 2);
  return words[0][0] + words[words.length - 1][0];
}

function colourFor(text) {
  let h = 0;
  for (const c of String(text)) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 45%)`;
}

function setAvatar(el, name, key) {
  el.textContent = initials(name);
  el.style.background = colourFor(key || name);
}

function clock(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function busy(button, on) {
  button.disabled = on;
  button.classList.toggle('busy', on);
}

// ---------------------------------------------------------------------------------------
// Keypads

const KEYS = [
  ['1', ''], ['2', 'ABC'], ['3', 'DEF'], ['4', 'GHI'], ['5', 'JKL'], ['6', 'MNO'],
  ['7', 'PQRS'], ['8', 'TUV'], ['9', 'WXYZ'], ['*', ''], ['0', '+'], ['#', ''],
];

function buildKeypad(container, onKey) {
  for (const [digit, letters] of KEYS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'key';
    b.dataset.key = digit;
    b.setAttribute('aria-label', digit);
    b.innerHTML = `<b>${digit}</b><small>${letters}</small>`;
    let longPress = null;
    b.addEventListener('pointerdown', () => {
      if (digit === '0') longPress = setTimeout(() => { longPress = 'fired'; onKey('+'); }, 600);
    });
    b.addEventListener('click', () => {
      if (longPress === 'fired') {
        longPress = null;
        return;
      }
      clearTimeout(longPress);
      longPress = null;
      onKey(digit);
    });
    container.appendChild(b);
  }
}

buildKeypad($('keypad'), (d) => {
  const dial = $('dial');
  dial.value += d;
  phone.tones.key(d);
});

buildKeypad($('dtmf-keypad'), (d) => sendDigit(d));

function sendDigit(d) {
  if (!phone.currentCall || phone.currentCall.state !== 'active') return;
  phone.tones.key(d);
  dtmfSent = (dtmfSent + d).slice(-24);
  $('dtmf-sent').textContent = dtmfSent;
  phone.sendDTMF(d).catch((e) => toast(`Touch-tone not sent: ${e.message}`, 'error'));
}

// ---------------------------------------------------------------------------------------
// Sign in

function savedAccount() {
  return store.get(ACCOUNT_KEY, null);
}

function fillForm() {
  const acc = savedAccount();
  const q = (k) => params.get(k);
  $('address').value = q('address') || (acc && acc.address) || '';
  $('authname').value = q('authname') || (acc && acc.authname) || '';
  $('displayname').value = q('displayname') || (acc && acc.displayName) || '';
  $('server').value = q('server') || (acc && acc.server) || '';
  $('password').value = (acc && acc.password) || '';
  $('remember').checked = !!acc;
  if ($('authname').value || $('server').value) $('signin-form').querySelector('details').open = true;
}

function formError(text) {
  const el = $('signin-error');
  el.hidden = !text;
  el.textContent = text || '';
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  phone.unlockAudio();
  formError('');
  const address = $('address').value.trim().replace(/^sips?:/i, '');
  $('address').setAttribute('aria-invalid', 'false');
  if (!/^[^@\s]+@[^@\s]+$/.test(address)) {
    $('address').setAttribute('aria-invalid', 'true');
    formError('Enter your SIP address as user@domain, for example alice@example.com.');
    $('address').focus();
    return;
  }
  await signIn({
    address,
    password: $('password').value,
    authname: $('authname').value.trim(),
    displayName: $('displayname').value.trim(),
    server: $('server').value.trim(),
  }, $('remember').checked);
});

async function signIn(acc, remember) {
  const button = $('signin');
  busy(button, true);
  phone.options.server = acc.server;
  try {
    await phone.connect({ aor: acc.address, password: acc.password, authname: acc.authname, displayName: acc.displayName });
    if (remember) store.set(ACCOUNT_KEY, { ...acc, auto: true });
    else store.remove(ACCOUNT_KEY);
    formError('');
    showPhone();
  } catch (e) {
    let text = e.message;
    if (e.code === 'refused') {
      text = `Registration refused: ${e.reason || 'no reason given'}.`;
      if (/^40[13]\b/.test(e.reason || '')) text += ' Check the address, user and password.';
    }
    formError(text);
  } finally {
    busy(button, false);
    render();
  }
}

function showPhone() {
  const acc = phone.account;
  const name = acc.displayName || acc.aor.split('@')[0];
  $('me-name').textContent = name;
  $('me-addr').textContent = acc.aor;
  setAvatar($('me-avatar'), name, acc.aor);
  $('account-info').textContent =
    `Signed in as ${acc.aor}${acc.authname ? ` (authentication user ${acc.authname})` : ''}` +
    `${phone.options.server ? ` through ${phone.options.server}` : ''}.`;
  renderHistory();
  render();
  setTimeout(() => $('dial').focus(), 0);
}

$('signout').addEventListener('click', () => {
  const acc = savedAccount();
  if (acc) store.set(ACCOUNT_KEY, { ...acc, auto: false });
  stopMicTest();
  phone.disconnect();
  banner('audio');
  banner('reg');
  fillForm();
  render();
});

// ---------------------------------------------------------------------------------------
// Calling

function normaliseTarget(text) {
  const t = text.trim();
  if (/^[\d\s\-().+]+$/.test(t)) return t.replace(/[\s\-().]/g, '');
  return t;
}

async function startCall(target) {
  phone.unlockAudio();
  const dest = normaliseTarget(target);
  if (!dest) {
    const last = history().find((h) => h.direction === 'outgoing');
    if (last) $('dial').value = last.remote;
    else toast('Enter a number or address to call');
    return;
  }
  if (phone.currentCall) return;
  banner('mic');
  linger = null;
  dtmfSent = '';
  showKeys = false;
  showDevices = false;
  try {
    await phone.call(dest);
    $('dial').value = '';
  } catch (e) {
    failure(e);
  }
}

function failure(e) {
  if (e.code === 'microphone-denied' || e.code === 'microphone-unavailable') {
    banner('mic', 'error', e.message);
  } else if (e.code !== 'state' || !phone.currentCall) {
    toast(e.message, 'error');
  }
  render();
}

$('call-btn').addEventListener('click', () => startCall($('dial').value));
$('dial').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') {
    e.preventDefault();
    startCall($('dial').value);
  }
});
$('dial-back').addEventListener('click', () => {
  const d = $('dial');
  d.value = d.value.slice(0, -1);
});

$('answer-btn').addEventListener('click', async () => {
  phone.unlockAudio();
  banner('mic');
  try {
    await phone.answer();
  } catch (e) {
    failure(e);
  }
});
$('reject-btn').addEventListener('click', () => phone.reject('486 Busy Here').catch(failure));
$('hangup-btn').addEventListener('click', () => {
  if (linger && !phone.currentCall) return closeLinger();
  phone.hangup().catch(failure);
});
// An ended call's screen goes away by itself; a tap dismisses it sooner.
$('view-call').addEventListener('click', (e) => {
  if (linger && !phone.currentCall && !e.target.closest('button')) closeLinger();
});
$('mute-btn').addEventListener('click', () => {
  const c = phone.currentCall;
  if (c) phone.mute(!c.muted);
});
$('hold-btn').addEventListener('click', async () => {
  const c = phone.currentCall;
  if (!c || c.state !== 'active') return;
  const b = $('hold-btn');
  b.disabled = true;
  try {
    await phone.hold(!c.held);
  } catch (e) {
    toast(`Hold failed: ${e.message}`, 'error');
  } finally {
    b.disabled = false;
    render();
  }
});
$('keys-btn').addEventListener('click', () => {
  showKeys = !showKeys;
  if (showKeys) showDevices = false;
  render();
});
$('devices-btn').addEventListener('click', () => {
  showDevices = !showDevices;
  if (showDevices) {
    showKeys = false;
    refreshDevices();
  }
  render();
});

// Keyboard: digits dial (or send touch-tones in a call), Enter calls, Escape hangs up.
document.addEventListener('keydown', (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  const inField = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName);
  const call = phone.currentCall;
  if (call && call.state === 'active' && !inField && /^[0-9*#]$/.test(e.key)) {
    sendDigit(e.key);
    e.preventDefault();
  } else if (call && e.key === 'Escape') {
    phone.hangup().catch(failure);
  } else if (!call && phone.connected && tab === 'keypad' && !inField && /^[0-9*#+]$/.test(e.key)) {
    $('dial').value += e.key;
    phone.tones.key(e.key);
    e.preventDefault();
  }
});

window.addEventListener('beforeunload', (e) => {
  if (phone.currentCall && phone.currentCall.state === 'active') {
    e.preventDefault();
    e.returnValue = '';
  }
});

// ---------------------------------------------------------------------------------------
// Phone events

phone.on('statechange', ({ state }) => {
  if (state === 'reconnecting') banner('reg', 'warn', 'Connection to the phone server lost. Reconnecting…', { dismiss: false });
  else banner('reg');
  render();
});

phone.on('connected', ({ reconnected }) => {
  if (reconnected) toast('Reconnected to the phone server');
  render();
  audioBanner();
});

phone.on('registration', ({ state, reason, expires }) => {
  if (state === 'lost') {
    banner('reg', 'error', `Registration lost (${reason || 'no reason given'}): incoming calls cannot reach you. Retrying…`, { dismiss: false });
  } else {
    banner('reg');
    if (expires) toast('Registered again');
  }
  render();
});

phone.on('refused', () => render());

phone.on('invited', ({ call }) => {
  linger = null;
  dtmfSent = '';
  showKeys = false;
  showDevices = false;
  phone.tones.ringtone();
  alertIncoming(call);
  render();
});

phone.on('ringing', () => {
  phone.tones.ringback();
  render();
});

phone.on('accepted', () => {
  phone.tones.stop();
  render();
});

phone.on('callstatechange', () => render());
phone.on('callupdate', () => render());

phone.on('dtmf', ({ digit }) => {
  toast(`Touch-tone received: ${digit}`);
});

phone.on('callended', ({ call, cause }) => {
  phone.tones.stop();
  if (call.answeredAt) phone.tones.hangup();
  stopIncomingAlert();
  addHistory(call);
  const text = endText(call);
  if (cause === 'cancelled') {
    missed += 1;
    renderBadge();
  }
  // (A microphone failure has its own banner, which says what to do.)
  const micFailed = call.error && call.error.code.startsWith('microphone');
  if ((cause === 'rejected' || cause === 'failed' || cause === 'disconnected' || cause === 'cancelled') && !micFailed) {
    toast(text, cause === 'cancelled' ? '' : 'error');
  }
  clearTimeout(linger && linger.timer);
  linger = { call, timer: setTimeout(closeLinger, cause === 'hangup' || cause === 'declined' ? 1200 : 3000) };
  render();
});

phone.on('devicechange', () => refreshDevices());
phone.on('audiostate', () => audioBanner());

function closeLinger() {
  if (linger) clearTimeout(linger.timer);
  linger = null;
  render();
}

function endText(call) {
  switch (call.cause) {
    case 'rejected':
      return `Call rejected: ${call.reason}`;
    case 'cancelled':
      return `Missed call from ${call.remoteName}`;
    case 'declined':
      return 'Call declined';
    case 'remote-hangup':
      return call.answeredAt ? `Call ended by ${call.remoteName}` : 'Call ended';
    case 'failed':
    case 'disconnected':
      return call.reason;
    default:
      return call.answeredAt ? 'Call ended' : 'Call cancelled';
  }
}

// Incoming-call alert: ringtone (when the browser allows sound), a pulsing call screen,
// a blinking title and, in the background, a desktop notification if allowed.
function alertIncoming(call) {
  const who = call.remoteName;
  stopIncomingAlert();
  let on = false;
  titleTimer = setInterval(() => {
    on = !on;
    document.title = on ? `Incoming call: ${who}` : 'Switchboard Phone';
  }, 900);
  if (!phone.audioUnlocked) {
    banner('audio', 'incoming', `${who} is calling. Your browser blocks sound until you click the page.`, {
      dismiss: false,
      action: { label: 'Enable sound', run: () => phone.unlockAudio().then(audioBanner) },
    });
  }
  if (prefs.notify && document.hidden && 'Notification' in window && Notification.permission === 'granted') {
    try {
      notification = new Notification('Incoming call', { body: `${who} is calling`, tag: 'switchboard-call', requireInteraction: true });
      notification.onclick = () => {
        window.focus();
        notification.close();
      };
    } catch (_) {
      notification = null;
    }
  }
  if (navigator.vibrate) navigator.vibrate([400, 200, 400]);
}

function stopIncomingAlert() {
  clearInterval(titleTimer);
  titleTimer = null;
  document.title = 'Switchboard Phone';
  if (notification) notification.close();
  notification = null;
  audioBanner();
}

// The autoplay rule: until the user has touched the page, no sound may play. Any click or
// key press unlocks it; say so while it is still locked and the phone can ring.
function audioBanner() {
  if (phone.audioUnlocked || !phone.connected) {
    banner('audio');
    return;
  }
  if (phone.currentCall && phone.currentCall.state === 'incoming') return; // the incoming banner says it
  banner('audio', 'info', 'Click anywhere to turn on sound, so that you hear the phone ring.', {
    action: { label: 'Turn on', run: () => phone.unlockAudio().then(audioBanner) },
  });
}

for (const type of ['pointerdown', 'keydown', 'touchstart']) {
  document.addEventListener(type, () => {
    if (!phone.audioUnlocked) phone.unlockAudio().then(audioBanner);
  }, { capture: true, passive: true });
}

// ---------------------------------------------------------------------------------------
// History (kept in this browser's localStorage, per account)

function historyKey() {
  return `switchboard.history.${phone.account ? phone.account.aor : ''}`;
}

function history() {
  return store.get(historyKey(), []);
}

function outcome(call) {
  if (call.answeredAt) return 'answered';
  if (call.direction === 'incoming') return call.cause === 'declined' ? 'declined' : call.cause === 'cancelled' ? 'missed' : 'failed';
  if (call.cause === 'rejected') return 'rejected';
  if (call.cause === 'hangup') return 'cancelled';
  return 'failed';
}

function addHistory(call) {
  if (!phone.account) return;
  const a = parseAddress(call.remote);
  const entry = {
    direction: call.direction,
    remote: a.address || call.remote,
    name: a.display || '',
    at: call.startedAt.getTime(),
    duration: call.duration,
    outcome: outcome(call),
    reason: call.cause === 'rejected' || call.cause === 'failed' ? call.reason : '',
  };
  const list = [entry, ...history()].slice(0, HISTORY_MAX);
  store.set(historyKey(), list);
  renderHistory();
}

function when(ms) {
  const d = new Date(ms);
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (d.toDateString() === y.toDateString()) return `Yesterday ${time}`;
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

function renderHistory() {
  const list = history();
  const ul = $('history');
  ul.innerHTML = '';
  $('history-empty').hidden = list.length > 0;
  $('history-clear').hidden = list.length === 0;
  for (const h of list) {
    const li = document.createElement('li');
    li.className = h.outcome;
    const dirIcon = h.outcome === 'missed' ? 'i-missed' : h.direction === 'incoming' ? 'i-in' : 'i-out';
    const icon = svgIcon(dirIcon);
    icon.classList.add('dir');
    const main = document.createElement('div');
    main.className = 'h-main';
    const name = document.createElement('div');
    name.className = 'h-name';
    name.textContent = h.name || h.remote;
    const sub = document.createElement('div');
    sub.className = 'h-sub';
    const what = {
      answered: clock(h.duration),
      missed: 'Missed',
      declined: 'Declined',
      rejected: `Rejected${h.reason ? ': ' + h.reason : ''}`,
      cancelled: 'Cancelled',
      failed: `Failed${h.reason ? ': ' + h.reason : ''}`,
    }[h.outcome] || h.outcome;
    sub.textContent = `${h.name ? h.remote + ' · ' : ''}${what}`;
    main.append(name, sub);
    const t = document.createElement('div');
    t.className = 'h-time';
    t.textContent = when(h.at);
    const callBtn = document.createElement('button');
    callBtn.className = 'icon-btn h-call';
    callBtn.type = 'button';
    callBtn.title = `Call ${h.name || h.remote}`;
    callBtn.setAttribute('aria-label', callBtn.title);
    callBtn.append(svgIcon('i-phone'));
    callBtn.onclick = (e) => {
      e.stopPropagation();
      startCall(h.remote);
    };
    li.onclick = () => {
      $('dial').value = h.remote;
      selectTab('keypad');
    };
    li.append(icon, main, t, callBtn);
    ul.appendChild(li);
  }
}

$('history-clear').addEventListener('click', () => {
  store.remove(historyKey());
  renderHistory();
});

function renderBadge() {
  const b = $('missed-badge');
  b.hidden = missed === 0;
  b.textContent = String(missed);
}

// ---------------------------------------------------------------------------------------
// Tabs, settings, devices

function selectTab(name) {
  tab = name;
  for (const b of document.querySelectorAll('.tab')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
  for (const p of document.querySelectorAll('.pane')) p.hidden = p.dataset.pane !== name;
  if (name === 'history') {
    missed = 0;
    renderBadge();
  }
  if (name === 'settings') refreshDevices();
  else stopMicTest();
}
for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => selectTab(b.dataset.tab));

// The device menus: in Settings, and in the call screen's Audio panel (same handlers).
const MIC_SELECTS = ['mic-select', 'call-mic-select'];
const SPEAKER_SELECTS = ['speaker-select', 'call-speaker-select'];

async function refreshDevices() {
  const { inputs, outputs } = await listDevices().catch(() => ({ inputs: [], outputs: [] }));
  const canOut = outputSelectable();
  for (const id of MIC_SELECTS) fillSelect($(id), inputs, phone.options.inputDeviceId, 'Default microphone');
  for (const id of SPEAKER_SELECTS) {
    fillSelect($(id), canOut ? outputs : [], phone.options.outputDeviceId, 'Default speaker');
    $(id).disabled = !canOut;
  }
  $('speaker-note').hidden = canOut;
}

function fillSelect(sel, devices, current, defaultLabel) {
  sel.innerHTML = '';
  const def = new Option(defaultLabel, '');
  sel.add(def);
  for (const d of devices) {
    if (d.deviceId === 'default' || d.deviceId === '') continue;
    sel.add(new Option(d.label, d.deviceId));
  }
  sel.value = devices.some((d) => d.deviceId === current) ? current : '';
}

// A change in either menu of a pair: remember it, keep the other in step, apply it.
function deviceMenus(ids, pref, apply, failed) {
  for (const id of ids) {
    $(id).addEventListener('change', async (e) => {
      prefs[pref] = e.target.value;
      store.set(PREFS_KEY, prefs);
      for (const other of ids) $(other).value = prefs[pref];
      try {
        await apply(prefs[pref]);
      } catch (err) {
        failed(err);
      }
    });
  }
}

deviceMenus(MIC_SELECTS, 'input', async (id) => {
  await phone.setInputDevice(id); // mid-call too: the track is replaced
  if (micTest) {
    stopMicTest();
    startMicTest();
  }
}, (err) => banner('mic', 'error', microphoneError(err).message));

deviceMenus(SPEAKER_SELECTS, 'output', (id) => phone.setOutputDevice(id),
  (err) => toast(`Could not switch the speaker: ${err.message}`, 'error'));

$('sound-test').addEventListener('click', async () => {
  await phone.unlockAudio();
  phone.tones.ringtone();
  setTimeout(() => {
    if (phone.tones.playing === 'ringtone' && !(phone.currentCall && phone.currentCall.state === 'incoming')) phone.tones.stop();
  }, 1400);
});

$('mic-test').addEventListener('click', () => (micTest ? stopMicTest() : startMicTest()));

async function startMicTest() {
  const btn = $('mic-test');
  if (!microphoneAvailable()) return;
  try {
    await phone.unlockAudio();
    const audio = { ...phone.options.audio };
    if (phone.options.inputDeviceId) audio.deviceId = { exact: phone.options.inputDeviceId };
    const stream = await navigator.mediaDevices.getUserMedia({ audio });
    const ctx = phone.audioContext();
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    micTest = { stream, source, analyser, buf: new Float32Array(analyser.fftSize) };
    btn.textContent = 'Stop test';
    banner('mic');
    refreshDevices(); // labels appear once permission is granted
    tickMeters();
  } catch (e) {
    banner('mic', 'error', microphoneError(e).message);
  }
}

function stopMicTest() {
  if (!micTest) return;
  for (const t of micTest.stream.getTracks()) t.stop();
  micTest.source.disconnect();
  micTest = null;
  $('mic-test').textContent = 'Test microphone';
  $('mic-test-level').style.width = '0';
}

$('notify').checked = !!prefs.notify;
$('notify').addEventListener('change', async (e) => {
  if (e.target.checked && 'Notification' in window && Notification.permission !== 'granted') {
    const p = await Notification.requestPermission().catch(() => 'denied');
    if (p !== 'granted') {
      e.target.checked = false;
      toast('Notifications are blocked for this site in the browser settings', 'error');
    }
  }
  prefs.notify = e.target.checked;
  store.set(PREFS_KEY, prefs);
});

// ---------------------------------------------------------------------------------------
// Level meters (WebAudio analysers from the SDK)

function level(an, buf) {
  an.getFloatTimeDomainData(buf);
  let sum = 0;
  for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
  const db = 20 * Math.log10(Math.sqrt(sum / buf.length) + 1e-9);
  return Math.max(0, Math.min(1, (db + 60) / 60));
}

function tickMeters() {
  cancelAnimationFrame(meterFrame);
  const frame = () => {
    const inCall = !!phone.currentCall;
    if (inCall) {
      const muted = phone.currentCall.muted || phone.currentCall.held;
      $('level-mic').style.width = `${muted ? 0 : Math.round(phone.getLevel('local') * 100)}%`;
      $('level-remote').style.width = `${Math.round(phone.getLevel('remote') * 100)}%`;
    }
    if (micTest) $('mic-test-level').style.width = `${Math.round(level(micTest.analyser, micTest.buf) * 100)}%`;
    if (inCall || micTest) meterFrame = requestAnimationFrame(frame);
    else {
      $('level-mic').style.width = '0';
      $('level-remote').style.width = '0';
    }
  };
  meterFrame = requestAnimationFrame(frame);
}

// ---------------------------------------------------------------------------------------
// Rendering

const STATUS = {
  calling: 'Calling…',
  ringing: 'Ringing…',
  incoming: 'is calling you',
  accepting: 'Connecting…',
};

function render() {
  const state = phone.state;
  app.dataset.phoneState = state;
  const signedIn = state !== 'disconnected';
  const call = phone.currentCall || (linger && linger.call);
  app.dataset.callState = call ? call.state : 'none';
  app.dataset.view = !signedIn && !call ? 'signin' : call ? 'call' : 'phone';

  // Top bar
  const reg = $('reg');
  const lost = phone.registration && phone.registration.state === 'lost';
  reg.dataset.state = lost && state === 'connected' ? 'lost' : state;
  const acc = phone.account;
  $('reg-text').textContent = {
    disconnected: 'Not signed in',
    connecting: 'Signing in…',
    reconnecting: 'Reconnecting…',
    connected: lost ? 'Not registered' : acc && acc.anonymous ? `${acc.aor} · calls out only` : acc ? acc.aor : 'Online',
  }[state];

  $('view-signin').hidden = app.dataset.view !== 'signin';
  $('view-phone').hidden = app.dataset.view !== 'phone';
  $('view-call').hidden = app.dataset.view !== 'call';
  $('call-btn').disabled = state !== 'connected';

  if (call) renderCall(call);
  tickMeters();
}

function renderCall(call) {
  const a = parseAddress(call.remote);
  const name = a.display || a.user || call.remote;
  $('call-direction').textContent = call.direction === 'incoming' ? 'Incoming call' : 'Outgoing call';
  $('call-name').textContent = name;
  $('call-addr').textContent = a.host ? a.address : '';
  setAvatar($('call-avatar'), name, a.address);

  const status = $('call-status');
  status.classList.remove('bad');
  let text;
  if (call.state === 'ended') {
    text = endText(call);
    if (['rejected', 'failed', 'disconnected', 'cancelled'].includes(call.cause)) status.classList.add('bad');
  } else if (call.state === 'active') {
    text = clock(call.duration);
    if (call.held) text += ' · On hold';
    else if (call.remoteHeld) text += ' · You are on hold';
  } else {
    text = STATUS[call.state] || call.state;
  }
  status.textContent = text;
  $('call-info').textContent = call.state === 'active' && call.browserCodec
    ? `${call.browserCodec.toUpperCase()}${call.audioCodec && call.audioCodec !== call.browserCodec ? ` ↔ ${call.audioCodec.toUpperCase()}` : ''}${call.transcoding ? ' (transcoded)' : ''}`
    : '';

  const incoming = call.state === 'incoming';
  const ended = call.state === 'ended';
  $('answer-btn').parentElement.hidden = !incoming;
  $('reject-btn').parentElement.hidden = !incoming;
  $('hangup-btn').parentElement.hidden = incoming || ended;
  $('call-controls').hidden = incoming || ended;
  $('levels').hidden = incoming || ended;

  const active = call.state === 'active';
  const mute = $('mute-btn');
  mute.setAttribute('aria-pressed', String(call.muted));
  mute.querySelector('use').setAttribute('href', call.muted ? '#i-micoff' : '#i-mic');
  mute.querySelector('span').textContent = call.muted ? 'Unmute' : 'Mute';
  const hold = $('hold-btn');
  hold.disabled = !active;
  hold.setAttribute('aria-pressed', String(call.held));
  hold.querySelector('use').setAttribute('href', call.held ? '#i-play' : '#i-pause');
  hold.querySelector('span').textContent = call.held ? 'Resume' : 'Hold';
  const keys = $('keys-btn');
  keys.disabled = !active;
  keys.setAttribute('aria-pressed', String(showKeys && active));
  $('dtmf-pane').hidden = !(showKeys && active);
  $('devices-btn').setAttribute('aria-pressed', String(showDevices));
  $('call-devices').hidden = !showDevices || incoming || ended;
  $('dtmf-sent').textContent = dtmfSent;
}

// The call timer.
setInterval(() => {
  if (phone.currentCall && phone.currentCall.state === 'active') renderCall(phone.currentCall);
}, 1000);

// ---------------------------------------------------------------------------------------
// Start

$('version').textContent = VERSION;
fillForm();
render();
if (!microphoneAvailable()) {
  banner('mic', 'error', window.isSecureContext
    ? 'This browser cannot use a microphone: calls will not work here.'
    : 'The microphone only works on a secure page: open the phone over https:// (or on localhost).');
}
const saved = savedAccount();
if (saved && saved.auto && !params.has('noauto')) {
  signIn(saved, true);
}
