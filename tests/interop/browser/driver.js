#!/usr/bin/env node
// Drives JsSIP in headless Chromium (Debian's /usr/bin/chromium through playwright-core) for
// tests/interop/browser.sh: a web phone registered over SIP-over-WebSocket (RFC 7118) that
// calls or answers a baresip softphone through switchboard.
//
// usage: node driver.js MODE --work DIR --ws URL --uri SIP_URI --password PW --wav FILE [options]
// MODE:
//   call      register, call --target, wait for 'confirmed' (and baresip's CALL_ESTABLISHED),
//             analyse the remote audio for --seconds, hang up from the browser, wait for the
//             call to end on both sides
//   answer    register, arm auto-answer, make baresip dial --dial, wait for 'confirmed' (and
//             CALL_ESTABLISHED), analyse the remote audio for --seconds, make baresip hang
//             up, wait for the BYE to reach the page
//   register  register, then obey commands read from stdin, one per line:
//             close-page (close the tab; the browser stays), reopen (new tab, register again),
//             kill-browser (SIGKILL the Chromium process), quit
// options: --target URI, --dial URI, --baresip-ctrl PORT (baresip's ctrl_tcp; needed by
//          answer, optional for call), --seconds N (default 5), --timeout MS (default 15000)
//
// Prints one line per step on stdout, "STEP WORDS..." (what browser.sh asserts on):
//   registered CONTACT | register-failed CAUSE
//   dialed ok | confirmed [FROM] | call-failed CAUSE
//   audio RATE HZ...   (dominant frequency of the remote audio, one per 500 ms window)
//   stats JSON         (getStats: packets, codecs, DTLS/ICE state)
//   hangup | remote-hangup ok | ended ORIGINATOR CAUSE | ended-timeout
//   baresip EVENT PARAM  (every ctrl_tcp event, e.g. CALL_ESTABLISHED, CALL_CLOSED)
//   baresip-not-established | baresip-not-closed (no such event within the timeout)
//   ready | page-closed | browser-killed PID | done | error MESSAGE
// Exit status 0 when every step of the mode ran (the assertions are browser.sh's), 1 if a
// step failed, 2 on usage error. JsSIP's debug log (every SIP message), the page's console
// and baresip's events and call status go to stderr.
// The page (page.html) and the JsSIP bundle (esbuild) are written into --work and loaded
// from file://. Only ever connects to the addresses it is given (127.0.0.1 in the tests).
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const readline = require('readline');

const MODES = ['call', 'answer', 'register'];

function parseArgs(argv) {
  const [mode, ...rest] = argv;
  const opt = { mode, seconds: 5, timeout: 15000 };
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i];
    const v = rest[i + 1];
    if (!k.startsWith('--') || v === undefined) usage(`bad argument ${k}`);
    opt[k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = v;
  }
  opt.seconds = Number(opt.seconds);
  opt.timeout = Number(opt.timeout);
  if (!MODES.includes(mode)) usage(`unknown mode ${mode}`);
  for (const k of ['work', 'ws', 'uri', 'password', 'wav']) if (!opt[k]) usage(`--${k} is required`);
  if (mode === 'call' && !opt.target) usage('call needs --target');
  if (mode === 'answer' && !(opt.dial && opt.baresipCtrl)) usage('answer needs --dial and --baresip-ctrl');
  return opt;
}

function usage(why) {
  const doc = fs.readFileSync(__filename, 'utf8').split("'use strict';")[0].split('\n').slice(1);
  console.error(`driver.js: ${why}\n` + doc.join('\n'));
  process.exit(2);
}

const say = (line) => process.stdout.write(line + '\n');
const log = (...a) => console.error(new Date().toISOString().slice(11, 23), ...a);

// The page and a browser build of JsSIP, side by side in the work directory.
function preparePage(work) {
  const esbuild = require('esbuild');
  esbuild.buildSync({
    entryPoints: [require.resolve('jssip/lib/JsSIP.js')],
    bundle: true,
    format: 'iife',
    globalName: 'JsSIP',
    outfile: path.join(work, 'jssip.js'),
    logLevel: 'warning',
  });
  fs.copyFileSync(path.join(__dirname, 'page.html'), path.join(work, 'page.html'));
  return 'file://' + path.join(work, 'page.html');
}

async function launch(opt) {
  const { chromium } = require('playwright-core');
  const udd = fs.mkdtempSync(path.join(opt.work, 'chromium-profile-'));
  const ctx = await chromium.launchPersistentContext(udd, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--use-file-for-fake-audio-capture=' + path.resolve(opt.wav),
      '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
    ],
  });
  return { ctx, udd };
}

async function openPhone(ctx, url, opt) {
  const page = await ctx.newPage();
  // JsSIP's `debug` output carries %c colour directives: drop them.
  page.on('console', (m) => log('console:', m.text().replace(/%c/g, '').replace(/ ?color: (#[0-9A-Fa-f]{6}|inherit)/g, '')));
  page.on('pageerror', (e) => log('pageerror:', e.message));
  await page.goto(url);
  const r = await page.evaluate((cfg) => window.phone.start(cfg), {
    wsUrl: opt.ws, uri: opt.uri, password: opt.password, timeoutMs: opt.timeout, debug: true,
  });
  if (!r.ok) {
    say(`register-failed ${r.cause}`);
    return null;
  }
  say(`registered ${r.contact}`);
  return page;
}

// The Chromium process playwright started: our direct child.
function chromiumPid() {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = stat.match(/^\d+ \((.*)\) \S+ (\d+)/);
      if (m && Number(m[2]) === process.pid && m[1].startsWith('chrom')) return Number(d);
    } catch (_) { /* gone */ }
  }
  return null;
}

// baresip's ctrl_tcp (netstring-framed JSON, see ../baresip_ctrl.py). baresip serves one
// control connection at a time and sends its events only there, so the driver keeps the
// one connection for the whole call: commands go out on it and every event is printed as
// "baresip TYPE PARAM".
class Baresip {
  constructor(port) {
    this.port = Number(port);
    this.events = [];
    this.waiters = [];
    this.pending = new Map();
    this.n = 0;
    this.buf = Buffer.alloc(0);
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.sock = net.createConnection({ host: '127.0.0.1', port: this.port }, resolve);
      this.sock.on('error', (e) => { log('baresip ctrl:', e.message); reject(e); });
      this.sock.on('data', (d) => this.onData(d));
    });
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const colon = this.buf.indexOf(':');
      if (colon <= 0) return;
      const n = Number(this.buf.subarray(0, colon).toString());
      if (this.buf.length < colon + 1 + n + 1) return;
      const obj = JSON.parse(this.buf.subarray(colon + 1, colon + 1 + n).toString());
      this.buf = this.buf.subarray(colon + 1 + n + 1);
      if (obj.event) {
        this.events.push(obj);
        log('baresip event:', JSON.stringify(obj));
        say(`baresip ${obj.type} ${obj.param || ''}`.trim());
        this.waiters = this.waiters.filter((w) => !(w.type === obj.type && (w.resolve(obj), true)));
      } else if (obj.response && this.pending.has(obj.token)) {
        this.pending.get(obj.token)(obj);
        this.pending.delete(obj.token);
      }
    }
  }

  command(command, params) {
    const token = `drv${++this.n}`;
    const payload = Buffer.from(JSON.stringify({ command, params: params || '', token }));
    this.sock.write(Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]));
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pending.delete(token); resolve({ ok: false, data: 'no response' }); }, 5000);
      this.pending.set(token, (r) => { clearTimeout(timer); resolve(r); });
    });
  }

  // The first event of this type (already seen or still to come), or null after ms.
  waitEvent(type, ms) {
    const seen = this.events.find((e) => e.type === type);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const w = { type, resolve };
      this.waiters.push(w);
      setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); resolve(null); }, ms);
    });
  }

  close() {
    if (this.sock) this.sock.destroy();
  }
}

// Listen to the remote audio, report RTP stats.
async function measure(page, opt) {
  const a = await page.evaluate(([ms]) => window.phone.listen(ms, 500), [opt.seconds * 1000]);
  if (a.ok) say(`audio ${a.sampleRate} ${a.windows.map((w) => w.hz).join(' ')}`);
  else say(`audio-failed ${a.cause}`);
  log('audio windows:', JSON.stringify(a));
  const st = await page.evaluate(() => window.phone.stats());
  say(`stats ${JSON.stringify(st)}`);
}

// The far end's view while the call is up: baresip's call status (RTP counters, codec).
async function farEndStatus(bs) {
  if (!bs) return;
  const r = await bs.command('callstat', '');
  log('baresip callstat:', r.ok, String(r.data || '').replace(/\x1b\[[0-9;]*m/g, ''));
}

// After the call is up on the page: baresip's CALL_ESTABLISHED, audio, stats.
async function midCall(page, bs, opt) {
  if (bs) {
    const e = await bs.waitEvent('CALL_ESTABLISHED', opt.timeout);
    if (!e) say('baresip-not-established');
  }
  await measure(page, opt);
  await farEndStatus(bs);
}

// The call is over on the page; and on baresip's side (CALL_CLOSED)?
async function afterCall(page, bs) {
  const e = await page.evaluate((ms) => window.phone.ended(ms), 5000);
  say(e.timeout ? 'ended-timeout' : `ended ${e.originator} ${e.cause}`);
  if (bs && !(await bs.waitEvent('CALL_CLOSED', 5000))) say('baresip-not-closed');
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opt.work, { recursive: true });
  const url = preparePage(opt.work);
  let bs = null;
  if (opt.baresipCtrl) {
    bs = new Baresip(opt.baresipCtrl);
    await bs.connect();
  }
  const { ctx, udd } = await launch(opt);
  let closed = false;
  const shutdown = async (code) => {
    if (bs) bs.close();
    if (!closed) {
      closed = true;
      await ctx.close().catch(() => {});
    }
    fs.rmSync(udd, { recursive: true, force: true });
    process.exit(code);
  };
  process.on('SIGTERM', () => shutdown(143));
  process.on('SIGINT', () => shutdown(130));

  let page = await openPhone(ctx, url, opt);
  if (!page) return shutdown(1);

  if (opt.mode === 'call') {
    const r = await page.evaluate(([t, ms]) => window.phone.call(t, ms), [opt.target, opt.timeout]);
    if (!r.ok) {
      say(`call-failed ${r.cause}${r.status ? ' ' + r.status : ''}`);
      return shutdown(1);
    }
    say('confirmed');
    await midCall(page, bs, opt);
    await page.evaluate(() => window.phone.hangup());
    say('hangup');
    await afterCall(page, bs);
  } else if (opt.mode === 'answer') {
    await page.evaluate((ms) => window.phone.answerNext(ms), opt.timeout);
    const d = await bs.command('dial', opt.dial);
    say(`dialed ${d.ok ? 'ok' : 'error ' + JSON.stringify(d.data)}`);
    const r = await page.evaluate(() => window.phone.answered());
    if (!r.ok) {
      say(`call-failed ${r.cause}${r.status ? ' ' + r.status : ''}`);
      return shutdown(1);
    }
    say(`confirmed ${r.from}`);
    await midCall(page, bs, opt);
    const h = await bs.command('hangup', '');
    say(`remote-hangup ${h.ok ? 'ok' : 'error ' + JSON.stringify(h.data)}`);
    await afterCall(page, bs);
  } else {
    const rl = readline.createInterface({ input: process.stdin });
    say('ready');
    for await (const line of rl) {
      const cmd = line.trim();
      if (cmd === 'close-page') {
        await page.close();
        say('page-closed');
      } else if (cmd === 'reopen') {
        page = await openPhone(ctx, url, opt);
        if (!page) return shutdown(1);
      } else if (cmd === 'kill-browser') {
        const pid = chromiumPid();
        if (pid) process.kill(pid, 'SIGKILL');
        closed = true; // nothing left to close cleanly
        say(`browser-killed ${pid}`);
      } else if (cmd === 'quit') {
        break;
      } else if (cmd) {
        say(`unknown-command ${cmd}`);
      }
    }
  }
  say('done');
  return shutdown(0);
}

main().catch((e) => {
  log('driver error:', e && e.stack ? e.stack : e);
  say(`error ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  process.exit(1);
});
