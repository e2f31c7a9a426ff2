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
//   unsettled METHOD...  (SIP transactions still pending 5 s after the call ended; the
//                        browser is only closed once none is, or after that)
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
const path = require('path');
const readline = require('readline');
const { Baresip, launch, log, say } = require('./lib');

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

// The call is over on the page; and on baresip's side (CALL_CLOSED)? JsSIP ends the
// session as soon as its BYE leaves: the BYE's transaction (a digest challenge and the
// authenticated BYE, say) must finish before the browser is closed, as it would in a tab
// left open.
async function afterCall(page, bs) {
  const e = await page.evaluate((ms) => window.phone.ended(ms), 5000);
  say(e.timeout ? 'ended-timeout' : `ended ${e.originator} ${e.cause}`);
  const s = await page.evaluate((ms) => window.phone.settled(ms), 5000);
  if (!s.ok) say(`unsettled ${s.pending.join(' ')}`);
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
