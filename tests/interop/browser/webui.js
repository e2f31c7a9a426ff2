#!/usr/bin/env node
// Drives Switchboard's own web phone (the page at `/`, and the VideoIO example page) in
// headless Chromium (Debian's /usr/bin/chromium through playwright-core, fake microphone
// playing a WAV) for tests/interop/webui.sh. The pages are served by the switchboard under
// test and used the way a person would: forms filled, buttons clicked.
//
// usage: node webui.js SCENARIO --work DIR --base http://127.0.0.1:PORT --wav FILE [options]
// SCENARIO:
//   call-baresip   sign in as --user, dial --target, wait for the call to be up (and for
//                  baresip's CALL_ESTABLISHED), analyse the remote audio for --seconds,
//                  hang up with the button, wait for baresip's CALL_CLOSED
//   two-pages      sign in as --user (fake mic --wav) and --user2 (second browser, fake mic
//                  --wav2, "remember me", then a reload signs it in again with sound still
//                  locked); the first dials the second, which rings, gets its sound by a
//                  click and answers from its ringing screen; both analyse their remote
//                  audio; the first hangs up
//   videoio        the VideoIO example page: its own Register / Call / Hang up buttons
//                  (which only use setProperty / callProperty) as --user, calling --target;
//                  then (with --dial) baresip calls the page, which accepts with its button
//   failures       what the page shows when things go wrong: signing in as --user with the
//                  wrong --password; then (signed in with --password2) calling --target,
//                  which does not exist; with --callee (and --callee-password), calling
//                  --callee's page with a microphone that fails after the invitation left;
//                  then, in a browser that refuses the microphone, calling --target again
//   close-tab      sign in, call --target, wait for CALL_ESTABLISHED at baresip, close the
//                  tab and report how long baresip took to see the BYE
// options: --user AOR --password PW --user2 AOR --password2 PW --wav2 FILE --target DEST --dial URI
//          --callee AOR --callee-password PW
//          --baresip-ctrl PORT --seconds N (default 5) --timeout MS (default 15000)
//          --shots DIR (screenshots of the idle, ringing and in-call screens)
//
// Prints one line per step on stdout (webui.sh asserts on them):
//   signed-in WHO | signin-failed WHO TEXT | screenshot NAME FILE | banner WHO TEXT
//   stored WHO none|FIELDS | auto-signed-in WHO BOOL | incoming-banner WHO TEXT | ringtone WHO ...
//   call-state WHO STATE | call-failed WHO TEXT | ended WHO TEXT | history WHO JSON
//   audio WHO RATE HZ... | audio-failed WHO CAUSE | level WHO REMOTE | stats WHO JSON
//   vio EVENT ARGS (the VideoIO page's onCallback) | vio-registered | vio-failed REASON
//   baresip EVENT PARAM | baresip-not-established | baresip-not-closed
//   far-end-closed MS | far-end-not-closed | done | error MESSAGE
//   late-mic-banner WHO TEXT | late-mic-callee WHO STATE (failures: the microphone failing late)
//   prepared-candidates WHO mdns|addresses N (call-baresip: the offer prepared before the
//   microphone was allowed)
//   pcs-after-call WHO N | pcs-after-signout WHO N (call-baresip: RTCPeerConnections left open)
//   click-sent-ms N, click-invite-ms N (call-baresip: the call button's click event to the
//   page's `invite` message leaving, and to the INVITE at baresip) | click-times-missing
// Exit status 0 when every step ran (the assertions are webui.sh's), 1 otherwise.
'use strict';

const fs = require('fs');
const path = require('path');
const { Baresip, log, say } = require('./lib');

const SCENARIOS = ['call-baresip', 'two-pages', 'videoio', 'failures', 'close-tab'];

function parseArgs(argv) {
  const [scenario, ...rest] = argv;
  const opt = { scenario, seconds: 5, timeout: 15000 };
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i];
    const v = rest[i + 1];
    if (!k.startsWith('--') || v === undefined) usage(`bad argument ${k}`);
    opt[k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = v;
  }
  opt.seconds = Number(opt.seconds);
  opt.timeout = Number(opt.timeout);
  if (!SCENARIOS.includes(scenario)) usage(`unknown scenario ${scenario}`);
  for (const k of ['work', 'base', 'wav', 'user']) if (!opt[k]) usage(`--${k} is required`);
  if (scenario === 'two-pages' && !(opt.user2 && opt.wav2)) usage('two-pages needs --user2 and --wav2');
  if (scenario === 'failures' && !(opt.password2 && opt.target)) usage('failures needs --password2 and --target');
  if (['call-baresip', 'videoio', 'close-tab'].includes(scenario) && !(opt.target && opt.baresipCtrl)) {
    usage(`${scenario} needs --target and --baresip-ctrl`);
  }
  return opt;
}

function usage(why) {
  const doc = fs.readFileSync(__filename, 'utf8').split("'use strict';")[0].split('\n').slice(1);
  console.error(`webui.js: ${why}\n` + doc.join('\n'));
  process.exit(2);
}

// A phone-sized Chromium with a fake microphone. No autoplay override: the page has to get
// its sound unlocked by the clicks, as for a person.
// With noPrompt there is no fake permission prompt: the test blocks the microphone for the
// page's origin (denyMicrophone below), as a person clicking "Block", or grants it later
// (a first visit: until then Chromium hides the host's addresses behind mDNS names).
async function launch(opt, wav, name, noPrompt = false) {
  const { chromium } = require('playwright-core');
  const udd = fs.mkdtempSync(path.join(opt.work, `chromium-${name}-`));
  const ctx = await chromium.launchPersistentContext(udd, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 390, height: 780 },
    deviceScaleFactor: 2,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(noPrompt ? [] : ['--use-fake-ui-for-media-stream']),
      '--use-fake-device-for-media-stream',
      '--use-file-for-fake-audio-capture=' + path.resolve(wav),
      '--allow-loopback-in-peer-connection',
    ],
  });
  return ctx;
}

async function openPage(ctx, url, who) {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => log(`${who} console:`, m.text()));
  page.on('pageerror', (e) => {
    log(`${who} pageerror:`, e.message);
    say(`error ${who} page: ${e.message}`);
  });
  await page.goto(url);
  return page;
}

async function denyMicrophone(ctx, page, origin) {
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Browser.setPermission', { permission: { name: 'microphone' }, setting: 'denied', origin });
}

async function shot(page, opt, name) {
  if (!opt.shots) return;
  fs.mkdirSync(opt.shots, { recursive: true });
  const file = path.join(opt.shots, `${name}.png`);
  await page.mouse.move(1, 1); // no hover effect from the last click
  await page.waitForTimeout(300); // let meters and animations settle into a frame
  await page.screenshot({ path: file });
  say(`screenshot ${name} ${file}`);
}

// Sign in through the form; resolves true when registered.
async function signIn(page, who, user, password, displayName, remember = false) {
  await page.fill('#address', user);
  await page.fill('#password', password || '');
  if (displayName) await page.fill('#displayname', displayName);
  await page.setChecked('#remember', remember);
  await page.click('#signin');
  const r = await page.waitForFunction(() => {
    const app = document.getElementById('app');
    const err = document.getElementById('signin-error');
    if (app.dataset.phoneState === 'connected') return { ok: true };
    if (!err.hidden && app.dataset.phoneState === 'disconnected') return { ok: false, text: err.textContent };
    return null;
  }, null, { timeout: 20000, polling: 100 }).then((h) => h.jsonValue());
  if (r.ok) say(`signed-in ${who}`);
  else say(`signin-failed ${who} ${r.text}`);
  return r.ok;
}

async function waitCallState(page, who, states, timeout) {
  const want = Array.isArray(states) ? states : [states];
  try {
    const h = await page.waitForFunction((w) => {
      const s = document.getElementById('app').dataset.callState;
      return w.includes(s) || s === 'ended' ? s : null;
    }, want, { timeout, polling: 50 });
    const s = await h.jsonValue();
    say(`call-state ${who} ${s}`);
    if (s === 'ended' && !want.includes('ended')) {
      say(`call-failed ${who} ${await page.textContent('#call-status')}`);
      return false;
    }
    return true;
  } catch (_) {
    const s = await page.evaluate(() => document.getElementById('app').dataset.callState);
    say(`call-failed ${who} still ${s} after ${timeout} ms`);
    return false;
  }
}

// Dominant frequency of the remote audio, one per window, from the call's remote stream
// (an 8192-point analyser on the page's own AudioContext). `how` finds the SDK's Phone.
async function listen(page, who, opt, how) {
  const a = await page.evaluate(async ([ms, win, how]) => {
    // eslint-disable-next-line no-undef
    const phone = how === 'videoio' ? getFlashMovie('phone1').videoio.phone : window.app.phone;
    const call = phone && phone.currentCall;
    if (!call || !call.remoteStream) return { ok: false, cause: 'no remote stream' };
    const ctx = phone.audioContext();
    if (ctx.state !== 'running') await ctx.resume().catch(() => {});
    if (ctx.state !== 'running') return { ok: false, cause: `AudioContext ${ctx.state} (sound never unlocked)` };
    const src = ctx.createMediaStreamSource(call.remoteStream);
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0;
    src.connect(an);
    const bins = new Float32Array(an.frequencyBinCount);
    const windows = [];
    let level = 0;
    for (let t = 0; t < ms; t += win) {
      await new Promise((r) => setTimeout(r, win));
      an.getFloatFrequencyData(bins);
      let mi = 1;
      for (let i = 2; i < bins.length; i++) if (bins[i] > bins[mi]) mi = i;
      windows.push({ hz: Math.round((mi * ctx.sampleRate) / an.fftSize), db: Math.round(bins[mi] * 10) / 10 });
      level = Math.max(level, phone.getLevel('remote'));
    }
    src.disconnect();
    return { ok: true, sampleRate: ctx.sampleRate, windows, level: Math.round(level * 100) / 100 };
  }, [opt.seconds * 1000, 500, how]);
  log(`${who} audio:`, JSON.stringify(a));
  if (!a.ok) {
    say(`audio-failed ${who} ${a.cause}`);
    return;
  }
  say(`audio ${who} ${a.sampleRate} ${a.windows.map((w) => w.hz).join(' ')}`);
  say(`level ${who} ${a.level}`);
  const stats = await page.evaluate(async (how) => {
    // eslint-disable-next-line no-undef
    const phone = how === 'videoio' ? getFlashMovie('phone1').videoio.phone : window.app.phone;
    return phone.getStats();
  }, how);
  say(`stats ${who} ${JSON.stringify(stats)}`);
}

async function history(page, who) {
  const h = await page.evaluate(() => {
    const key = `switchboard.history.${window.app.phone.account.aor}`;
    return JSON.parse(localStorage.getItem(key) || '[]')[0] || null;
  });
  say(`history ${who} ${JSON.stringify(h)}`);
}

// What the page keeps in localStorage about the account: "none", or the fields it has.
function stored(page) {
  return page.evaluate(() => {
    const v = localStorage.getItem('switchboard.account');
    return v === null ? 'none' : Object.keys(JSON.parse(v)).sort().join(',');
  });
}

function bannerText(page, id) {
  return page.evaluate((id) => {
    const el = document.querySelector(`[data-banner="${id}"]`);
    return el ? el.textContent : '(none)';
  }, id);
}

async function endedText(page, who) {
  const t = await page.waitForFunction(() => {
    const app = document.getElementById('app');
    return app.dataset.callState === 'ended' ? document.getElementById('call-status').textContent : null;
  }, null, { timeout: 10000, polling: 50 }).then((h) => h.jsonValue()).catch(() => null);
  say(`ended ${who} ${t === null ? '(never ended)' : t}`);
}

async function baresip(opt) {
  const bs = new Baresip(opt.baresipCtrl);
  await bs.connect();
  return bs;
}

// The number of baresip events of a type, once there are at least n (or what there is after ms).
async function events(bs, type, n, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const k = bs.events.filter((e) => e.type === type).length;
    if (k >= n || Date.now() > end) return bs.events.filter((e) => e.type === type);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Settings: the microphone test shows a level, the device menus list the browser's (fake)
// microphones and loudspeakers, and the second of each is chosen for the call that follows.
async function devices(page) {
  await page.click('.tab[data-tab="settings"]');
  await page.click('#mic-test');
  const seen = await page.waitForFunction(() => {
    const n = document.querySelectorAll('#mic-select option').length;
    const level = parseFloat(document.getElementById('mic-test-level').style.width) || 0;
    return n >= 3 && level > 0 ? { level } : null;
  }, null, { timeout: 10000, polling: 100 }).then((h) => h.jsonValue()).catch(() => null);
  const menus = await page.evaluate(() => ({
    microphones: [...document.querySelectorAll('#mic-select option')].map((o) => o.textContent),
    speakers: [...document.querySelectorAll('#speaker-select option')].map((o) => o.textContent),
  }));
  await page.selectOption('#mic-select', { label: 'Fake Audio Input 2' }).catch((e) => log('mic select:', e.message));
  await page.selectOption('#speaker-select', { label: 'Fake Audio Output 2' }).catch((e) => log('speaker select:', e.message));
  await page.click('#mic-test');
  say(`devices a ${JSON.stringify({ micTestLevel: seen ? seen.level > 0 : false, ...menus })}`);
  await page.click('.tab[data-tab="keypad"]');
}

// The in-call buttons against baresip: touch-tones from the keypad, hold and resume (each
// a re-INVITE baresip sees as a new remote offer), mute and unmute, another microphone.
async function controls(page, bs) {
  await page.click('#keys-btn');
  const before = bs.events.filter((e) => e.type === 'CALL_DTMF_START').length;
  for (const d of ['1', '5', '#']) {
    await page.click(`#dtmf-keypad .key[data-key="${d}"]`);
    await page.waitForTimeout(250);
  }
  const got = (await events(bs, 'CALL_DTMF_START', before + 3, 5000)).slice(before).map((e) => e.param).join('');
  say(`dtmf a sent ${await page.textContent('#dtmf-sent')} baresip ${got || '(none)'}`);
  await page.click('#keys-btn');

  const offers = bs.events.filter((e) => e.type === 'CALL_REMOTE_SDP').length;
  await page.click('#hold-btn');
  await page.waitForFunction(() => /On hold/.test(document.getElementById('call-status').textContent), null, { timeout: 5000 })
    .catch(() => {});
  say(`hold a ${await page.textContent('#call-status')} / ${await page.textContent('#hold-btn span')}`);
  say(`baresip-offers-after-hold ${(await events(bs, 'CALL_REMOTE_SDP', offers + 1, 5000)).length - offers}`);
  await page.click('#hold-btn');
  await page.waitForFunction(() => !/On hold/.test(document.getElementById('call-status').textContent), null, { timeout: 5000 })
    .catch(() => {});
  say(`resume a ${await page.textContent('#call-status')} / ${await page.textContent('#hold-btn span')}`);
  say(`baresip-offers-after-resume ${(await events(bs, 'CALL_REMOTE_SDP', offers + 2, 5000)).length - offers}`);

  await page.click('#mute-btn');
  // The meter falls to 0 % on its next animation frame: wait for that, not a fixed time
  // (a starved page paints late); on timeout the state found is reported and checked.
  await page.waitForFunction(() => document.getElementById('mute-btn').getAttribute('aria-pressed') === 'true'
    && document.getElementById('level-mic').style.width === '0%', null, { timeout: 5000 }).catch(() => {});
  const muted = await page.evaluate(() => ({
    pressed: document.getElementById('mute-btn').getAttribute('aria-pressed'),
    meter: document.getElementById('level-mic').style.width,
    track: window.app.phone.currentCall.localStream.getAudioTracks()[0].enabled,
  }));
  say(`mute a ${JSON.stringify(muted)}`);
  await page.click('#mute-btn');
  await page.waitForFunction(() => window.app.phone.currentCall.localStream.getAudioTracks()[0].enabled, null, { timeout: 5000 })
    .catch(() => {});
  say(`unmute a ${await page.evaluate(() => window.app.phone.currentCall.localStream.getAudioTracks()[0].enabled)}`);

  // Another microphone mid-call, from the call screen's Audio panel.
  await page.click('#devices-btn');
  await page.waitForFunction(() => document.querySelectorAll('#call-mic-select option').length >= 3, null, { timeout: 5000 }).catch(() => {});
  await page.selectOption('#call-mic-select', { label: 'Fake Audio Input 1' }).catch((e) => log('call mic select:', e.message));
  await page.waitForFunction(() => window.app.phone.currentCall.localStream.getAudioTracks()[0].label === 'Fake Audio Input 1', null, { timeout: 5000 }).catch(() => {});
  say(`switched a ${await page.evaluate(() => {
    const call = window.app.phone.currentCall;
    const sender = call.pc.getSenders().find((x) => x.track);
    return `${call.localStream.getAudioTracks()[0].label} sending=${sender ? sender.track.label : 'none'}`;
  })}`);
  await page.waitForTimeout(1500); // baresip records the new microphone too
  await page.click('#devices-btn');
}

// The call button's timing (bench/web/run.sh): before the click, the page notes when the
// click event happened (its timeStamp, on the wall clock) and when the `invite` message
// leaves on the WebSocket; clickTimes then reports click → invite sent and click → the
// INVITE at baresip (CALL_REMOTE_SDP; node and the page share the machine's clock).
async function clickTimer(page) {
  await page.evaluate(() => {
    const t = (window.__clickTimes = {});
    addEventListener('click', (e) => {
      if (e.target.closest('#call-btn')) t.click = Date.now() - (performance.now() - e.timeStamp);
    }, { capture: true, once: true });
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if (t.sent === undefined && typeof data === 'string' && data.startsWith('{"type":"invite"')) t.sent = Date.now();
      return send.call(this, data);
    };
  });
}

async function clickTimes(page, bs) {
  const t = await page.evaluate(() => window.__clickTimes);
  const invite = bs.events.find((e) => e.type === 'CALL_REMOTE_SDP');
  if (!t || t.click === undefined || t.sent === undefined || !invite) {
    say(`click-times-missing ${JSON.stringify(t)}`);
    return;
  }
  say(`click-sent-ms ${Math.round(t.sent - t.click)}`);
  say(`click-invite-ms ${Math.round(invite.receivedAt - t.click)}`);
}

// -- scenarios ---------------------------------------------------------------------------

// Every RTCPeerConnection the page makes, in window.__pcs (the SDK's prepared offers are
// checked for leaks).
function countPeerConnections() {
  const all = (window.__pcs = []);
  window.RTCPeerConnection = class extends window.RTCPeerConnection {
    constructor(...a) {
      super(...a);
      all.push(this);
    }
  };
}

async function openPeerConnections(page) {
  return page.evaluate(() => window.__pcs.filter((pc) => pc.signalingState !== 'closed').length);
}

async function callBaresip(opt) {
  const bs = await baresip(opt);
  const ctx = await launch(opt, opt.wav, 'a', true);
  try {
    await ctx.addInitScript(countPeerConnections);
    const page = await openPage(ctx, opt.base + '/', 'a');
    if (!(await signIn(page, 'a', opt.user, opt.password, 'Bob Browser'))) return;
    // A first visit: the SDK prepared its offer before the microphone was ever allowed, so
    // its host candidates are mDNS names; the person allows the microphone afterwards.
    say(`prepared-candidates a ${await page.evaluate(async () => {
      await new Promise((r) => setTimeout(r, 300));
      const sdp = window.__pcs.length ? window.__pcs[0].localDescription?.sdp || '' : '';
      const c = sdp.split('\r\n').filter((l) => l.startsWith('a=candidate'));
      return c.length && c.every((l) => / [0-9a-f-]+\.local /.test(l)) ? 'mdns' : `addresses ${c.length}`;
    })}`);
    await ctx.grantPermissions(['microphone'], { origin: opt.base });
    await shot(page, opt, 'idle');
    await devices(page);
    await page.fill('#dial', opt.target);
    await clickTimer(page);
    await page.click('#call-btn');
    if (!(await waitCallState(page, 'a', 'active', opt.timeout))) return;
    if (!(await bs.waitEvent('CALL_ESTABLISHED', opt.timeout))) say('baresip-not-established');
    await clickTimes(page, bs);
    say(`devices-used a ${JSON.stringify(await page.evaluate(async () => {
      const phone = window.app.phone;
      const outs = await navigator.mediaDevices.enumerateDevices();
      const sink = outs.find((d) => d.kind === 'audiooutput' && d.deviceId === phone.audioElement.sinkId);
      return { microphone: phone.currentCall.localStream.getAudioTracks()[0].label, speaker: sink ? sink.label : phone.audioElement.sinkId };
    }))}`);
    await listen(page, 'a', opt, 'page');
    await shot(page, opt, 'in-call');
    await controls(page, bs);
    await page.click('#hangup-btn');
    await endedText(page, 'a');
    if (!(await bs.waitEvent('CALL_CLOSED', 10000))) say('baresip-not-closed');
    await history(page, 'a');
    // Left open: the next call's prepared offer only; after signing out: none.
    say(`pcs-after-call a ${await openPeerConnections(page)}`);
    await page.$eval('#signout', (b) => b.click());
    say(`pcs-after-signout a ${await openPeerConnections(page)}`);
  } finally {
    bs.close();
    await ctx.close();
  }
}

async function twoPages(opt) {
  const ctxA = await launch(opt, opt.wav, 'a');
  const ctxB = await launch(opt, opt.wav2, 'b');
  try {
    const a = await openPage(ctxA, opt.base + '/', 'a');
    const b = await openPage(ctxB, opt.base + '/', 'b');
    if (!(await signIn(a, 'a', opt.user, opt.password, 'Alice Anders'))) return;
    say(`stored a ${await stored(a)}`);
    // Bob asks to be remembered, then reloads: signed in again without touching the page,
    // so the browser keeps it silent until he clicks (the autoplay rule) and the page says so.
    if (!(await signIn(b, 'b', opt.user2, opt.password2, 'Bob Berg', true))) return;
    say(`stored b ${await stored(b)}`);
    await b.reload();
    const auto = await b.waitForFunction(() => document.getElementById('app').dataset.phoneState === 'connected', null, { timeout: 10000 })
      .then(() => true).catch(() => false);
    say(`auto-signed-in b ${auto}`);
    if (!auto) return;
    say(`banner b ${await bannerText(b, 'audio')}`);
    await a.fill('#dial', opt.user2.split('@')[0]); // a bare user: the server adds the domain
    await a.click('#call-btn');
    if (!(await waitCallState(b, 'b', 'incoming', opt.timeout))) return;
    await waitCallState(a, 'a', ['ringing', 'active'], opt.timeout);
    say(`incoming b ${await b.textContent('#call-name')}`);
    say(`incoming-banner b ${await bannerText(b, 'audio')}`);
    say(`ringtone b ${await b.evaluate(() => `${window.app.phone.tones.playing} blocked=${window.app.phone.tones.blocked}`)}`);
    await b.click('#call-name'); // any click turns the sound on
    await b.waitForFunction(() => !window.app.phone.tones.blocked, null, { timeout: 5000 }).catch(() => {});
    say(`ringtone b ${await b.evaluate(() => `${window.app.phone.tones.playing} blocked=${window.app.phone.tones.blocked}`)} banner=${await bannerText(b, 'audio')}`);
    // Alice gives up before Bob answers: a missed call on his page (CANCEL).
    await a.click('#hangup-btn');
    await endedText(b, 'b');
    await b.waitForFunction(() => document.getElementById('app').dataset.callState === 'none', null, { timeout: 10000 }).catch(() => {});
    say(`missed b badge=${await b.evaluate(() => { const e = document.getElementById('missed-badge'); return e.hidden ? '' : e.textContent; })} ringtone=${await b.evaluate(() => window.app.phone.tones.playing)}`);
    await history(b, 'b');
    await a.waitForFunction(() => document.getElementById('app').dataset.callState === 'none', null, { timeout: 10000 }).catch(() => {});
    // Again, and this time Bob answers.
    await a.fill('#dial', opt.user2.split('@')[0]);
    await a.click('#call-btn');
    if (!(await waitCallState(b, 'b', 'incoming', opt.timeout))) return;
    await shot(b, opt, 'ringing');
    await b.click('#answer-btn');
    if (!(await waitCallState(b, 'b', 'active', opt.timeout))) return;
    if (!(await waitCallState(a, 'a', 'active', opt.timeout))) return;
    await Promise.all([listen(a, 'a', opt, 'page'), listen(b, 'b', opt, 'page')]);
    await a.click('#hangup-btn');
    await Promise.all([endedText(a, 'a'), endedText(b, 'b')]);
    await history(a, 'a');
    await history(b, 'b');
  } finally {
    await ctxA.close();
    await ctxB.close();
  }
}

async function videoio(opt) {
  const bs = await baresip(opt);
  const ctx = await launch(opt, opt.wav, 'a');
  try {
    const page = await openPage(ctx, opt.base + '/examples/videoio-phone.html', 'a');
    await page.exposeFunction('__vioEvent', (method, args) => say(`vio ${method} ${JSON.stringify(args)}`));
    // Watch the page's own onCallback (it stays the page's handler; this only listens).
    await page.evaluate(() => {
      const orig = window.onCallback;
      window.onCallback = function (event) {
        window.__vioEvent(event.method, event.args);
        return orig.apply(this, arguments);
      };
    });
    await page.waitForFunction(() => /not registered/.test(document.getElementById('status').textContent), null, { timeout: 10000 });
    const [user, domain] = opt.user.split('@');
    await page.fill('#server', '127.0.0.1');
    await page.fill('#user', opt.user);
    await page.fill('#authname', user);
    await page.fill('#authpass', opt.password);
    await page.fill('#displayname', 'Bob VideoIO');
    await page.fill('#target', opt.target);
    log('domain', domain);
    await page.click('#register');
    const reg = await page.waitForFunction(() => {
      const s = document.getElementById('status').textContent;
      return /^registered$|failed/.test(s) ? s : null;
    }, null, { timeout: 20000, polling: 100 }).then((h) => h.jsonValue()).catch(() => 'timeout');
    if (reg !== 'registered') {
      say(`vio-failed ${reg}`);
      return;
    }
    say('vio-registered');
    await page.click('#call');
    const up = await page.waitForFunction(() => /in call|rejected/.test(document.getElementById('status').textContent), null, { timeout: opt.timeout, polling: 50 })
      .then(() => true).catch(() => false);
    say(`vio-status ${await page.textContent('#status')}`);
    if (!up) return;
    const props = await page.evaluate(() => {
      const p = getFlashMovie('phone1'); // eslint-disable-line no-undef
      return { publish: p.getProperty('publish'), play: p.getProperty('play'), microphone: p.getProperty('microphone'), playing: p.getProperty('playing') };
    });
    say(`vio-props ${JSON.stringify(props)}`);
    if (!(await bs.waitEvent('CALL_ESTABLISHED', opt.timeout))) say('baresip-not-established');
    await listen(page, 'a', opt, 'videoio');
    await page.click('#hangup');
    if (!(await bs.waitEvent('CALL_CLOSED', 10000))) say('baresip-not-closed');
    say(`vio-status ${await page.textContent('#status')}`);
    if (opt.dial) await videoioAnswers(page, bs, opt);
    await page.click('#unregister');
  } finally {
    bs.close();
    await ctx.close();
  }
}

// baresip calls the VideoIO page: onCallback invited, the page's Accept button, accepted,
// audio both ways, then baresip hangs up and the page gets byed.
async function videoioAnswers(page, bs, opt) {
  const established = bs.events.filter((e) => e.type === 'CALL_ESTABLISHED').length;
  const closed = bs.events.filter((e) => e.type === 'CALL_CLOSED').length;
  const r = await bs.command('dial', opt.dial);
  log('baresip dial:', JSON.stringify(r));
  const ringing = await page.waitForFunction(() => /incoming call/.test(document.getElementById('status').textContent), null, { timeout: opt.timeout, polling: 50 })
    .then(() => true).catch(() => false);
  say(`vio-incoming ${ringing} ${await page.textContent('#caller')}`);
  if (!ringing) return;
  await page.click('#accept');
  const up = await page.waitForFunction(() => /in call/.test(document.getElementById('status').textContent), null, { timeout: opt.timeout, polling: 50 })
    .then(() => true).catch(() => false);
  say(`vio-answered ${await page.textContent('#status')}`);
  if (!up) return;
  if ((await events(bs, 'CALL_ESTABLISHED', established + 1, opt.timeout)).length <= established) say('baresip-not-established-in');
  await listen(page, 'in', opt, 'videoio');
  await bs.command('hangup');
  const byed = await page.waitForFunction(() => /call ended/.test(document.getElementById('status').textContent), null, { timeout: 10000, polling: 50 })
    .then(() => true).catch(() => false);
  say(`vio-remote-hangup ${byed} ${await page.textContent('#status')}`);
  if ((await events(bs, 'CALL_CLOSED', closed + 1, 5000)).length <= closed) say('baresip-not-closed-in');
}

async function failures(opt) {
  const ctx = await launch(opt, opt.wav, 'a');
  try {
    const page = await openPage(ctx, opt.base + '/', 'a');
    await signIn(page, 'a', opt.user, opt.password, '');
    await shot(page, opt, 'wrong-password');
    // A call to nobody: the page says why it was refused.
    if (!(await signIn(page, 'a', opt.user, opt.password2, ''))) return;
    await page.fill('#dial', opt.target);
    await page.click('#call-btn');
    await waitCallState(page, 'a', 'ended', opt.timeout);
    say(`ended a ${await page.textContent('#call-status')}`);
    await shot(page, opt, 'rejected');
    if (opt.callee) await lateMicrophone(opt, page);
  } finally {
    await ctx.close();
  }
  // The microphone refused: the call does not start and a banner says what to do.
  const ctx2 = await launch(opt, opt.wav, 'b', true);
  try {
    const page = await openPage(ctx2, opt.base + '/', 'b');
    await denyMicrophone(ctx2, page, opt.base);
    if (!(await signIn(page, 'b', opt.user, opt.password2, ''))) return;
    await page.fill('#dial', opt.target);
    await page.click('#call-btn');
    const text = await page.waitForFunction(() => {
      const b = document.querySelector('[data-banner="mic"]');
      return b ? b.textContent : null;
    }, null, { timeout: opt.timeout, polling: 100 }).then((h) => h.jsonValue()).catch(() => '(no banner)');
    say(`banner b ${text}`);
    say(`call-state b ${await page.evaluate(() => document.getElementById('app').dataset.callState)}`);
    await shot(page, opt, 'microphone-denied');
  } finally {
    await ctx2.close();
  }
}

// The microphone fails after the invitation has left (as when a person refuses the
// permission prompt a second after clicking Call: the SDK sends the prepared offer at the
// click): --callee's page (its own browser) rings, then the caller's page hangs up by
// itself and says why, and the callee's ringing stops.
async function lateMicrophone(opt, page) {
  const ctx = await launch(opt, opt.wav, 'c');
  try {
    const callee = await openPage(ctx, opt.base + '/', 'c');
    if (!(await signIn(callee, 'c', opt.callee, opt.calleePassword, ''))) return;
    await page.evaluate(() => {
      navigator.mediaDevices.getUserMedia = () => new Promise((_, reject) => {
        setTimeout(() => reject(new DOMException('Permission denied', 'NotAllowedError')), 1500);
      });
    });
    await page.fill('#dial', opt.callee);
    await page.click('#call-btn');
    await waitCallState(callee, 'c', 'incoming', opt.timeout);
    await waitCallState(page, 'a', 'ended', opt.timeout);
    const banner = await page.waitForFunction(() => {
      const b = document.querySelector('[data-banner="mic"]');
      return b ? b.textContent : null;
    }, null, { timeout: 5000, polling: 100 }).then((h) => h.jsonValue()).catch(() => '(no banner)');
    say(`late-mic-banner a ${banner}`);
    const after = await callee.waitForFunction(() => {
      const s = document.getElementById('app').dataset.callState;
      return s === 'incoming' ? null : s;
    }, null, { timeout: 5000, polling: 50 }).then((h) => h.jsonValue()).catch(() => 'still incoming');
    say(`late-mic-callee c ${after}`);
  } finally {
    await ctx.close();
  }
}

async function closeTab(opt) {
  const bs = await baresip(opt);
  const ctx = await launch(opt, opt.wav, 'a');
  try {
    const page = await openPage(ctx, opt.base + '/', 'a');
    if (!(await signIn(page, 'a', opt.user, opt.password, ''))) return;
    await page.fill('#dial', opt.target);
    await page.click('#call-btn');
    if (!(await waitCallState(page, 'a', 'active', opt.timeout))) return;
    if (!(await bs.waitEvent('CALL_ESTABLISHED', opt.timeout))) {
      say('baresip-not-established');
      return;
    }
    const t0 = Date.now();
    await page.close(); // as a person closing the tab: no beforeunload prompt
    say('tab-closed');
    const ev = await bs.waitEvent('CALL_CLOSED', 10000);
    say(ev ? `far-end-closed ${Date.now() - t0}` : 'far-end-not-closed');
  } finally {
    bs.close();
    await ctx.close();
  }
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opt.work, { recursive: true });
  const run = {
    'call-baresip': callBaresip,
    'two-pages': twoPages,
    videoio,
    failures,
    'close-tab': closeTab,
  }[opt.scenario];
  await run(opt);
  say('done');
}

main().then(() => process.exit(0), (e) => {
  log('error:', e && e.stack ? e.stack : e);
  say(`error ${String((e && e.message) || e).split('\n')[0]}`);
  process.exit(1);
});
