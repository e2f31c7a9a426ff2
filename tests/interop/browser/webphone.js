#!/usr/bin/env node
// Drives the /phone JSON API (docs/web-api.md) from headless Chromium (Debian's
// /usr/bin/chromium through playwright-core) for tests/interop/webphone.sh, with
// webphone.html as the page: connect a line, call or answer a baresip softphone through
// switchboard with the audio over WebRTC, or check a refusal / a closed tab.
//
// usage: node webphone.js MODE --work DIR --url WS_URL --password PW --wav FILE [options]
// MODE:
//   call      connect, invite --target with --codecs, wait for `accepted` (and baresip's
//             CALL_ESTABLISHED), analyse the remote audio for --seconds, bye, wait for
//             baresip's CALL_CLOSED (without --baresip-ctrl: a peer the caller of this
//             script runs, e.g. rtmp-phone; no baresip steps)
//   answer    connect, make baresip dial --dial, accept with --codecs, analyse the remote
//             audio, make baresip hang up, wait for `byed` (without --baresip-ctrl: accept
//             the call someone else makes, wait up to --timeout for the caller's hang-up)
//   connect   connect and report the outcome (wrong-password check)
//   close-tab connect, invite --target, wait for CALL_ESTABLISHED, close the tab, report how
//             long baresip took to see CALL_CLOSED
// options: --authname NAME, --target DEST, --dial URI, --codecs "pcmu dtmf",
//          --baresip-ctrl PORT, --seconds N (default 5), --timeout MS (default 15000),
//          --server-pid PID (call mode: also report the server's CPU, for bench/web)
//
// Prints one line per step on stdout (webphone.sh asserts on them):
//   connected | refused REASON
//   accepted JSON | call-failed REASON | invite-ms N
//   audio RATE HZ... | audio-failed CAUSE | stats JSON
//   dtmf-api 5 | dtmf-browser 7 (baresip got the digit sent by `sendDTMF` / RTCDTMFSender)
//   bye RESULT | byed | byed-timeout | tab-closed | far-end-closed MS | far-end-not-closed
//   baresip EVENT PARAM | baresip-not-established | baresip-not-closed | done | error MESSAGE
//   invite-ms N (call button to the INVITE at baresip), server-invite-ms N (the page's
//   `invite` message to the INVITE at baresip), offer-ms N (the page's share: taking the
//   offer it prepared while idle; the microphone opens after the invite has left),
//   server-idle-cpu NS MS, server-call-cpu NS MS
//   (CPU nanoseconds the server used over MS milliseconds, idle and during the call)
// Exit status 0 when every step ran (the assertions are webphone.sh's), 1 otherwise.
'use strict';

const fs = require('fs');
const path = require('path');
const { Baresip, cpuNs, launch, log, say } = require('./lib');

const MODES = ['call', 'answer', 'connect', 'close-tab'];

function parseArgs(argv) {
  const [mode, ...rest] = argv;
  const opt = { mode, seconds: 5, timeout: 15000, codecs: '', authname: '' };
  for (let i = 0; i < rest.length; i += 2) {
    const k = rest[i];
    const v = rest[i + 1];
    if (!k.startsWith('--') || v === undefined) usage(`bad argument ${k}`);
    opt[k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = v;
  }
  opt.seconds = Number(opt.seconds);
  opt.timeout = Number(opt.timeout);
  opt.codecs = opt.codecs.split(/[ ,]+/).filter(Boolean);
  if (!MODES.includes(mode)) usage(`unknown mode ${mode}`);
  for (const k of ['work', 'url', 'wav']) if (!opt[k]) usage(`--${k} is required`);
  if (mode === 'call' && !opt.target) usage('call needs --target');
  if (mode === 'close-tab' && !(opt.target && opt.baresipCtrl)) usage('close-tab needs --target and --baresip-ctrl');
  if (mode === 'answer' && !opt.dial !== !opt.baresipCtrl) usage('answer: --dial and --baresip-ctrl go together');
  return opt;
}

function usage(why) {
  const doc = fs.readFileSync(__filename, 'utf8').split("'use strict';")[0].split('\n').slice(1);
  console.error(`webphone.js: ${why}\n` + doc.join('\n'));
  process.exit(2);
}

async function cpuOver(pid, what, fn) {
  const c0 = cpuNs(pid);
  const t0 = Date.now();
  const r = await fn();
  say(`${what} ${cpuNs(pid) - c0} ${Date.now() - t0}`);
  return r;
}

async function measure(page, opt) {
  const listen = () => page.evaluate(([ms]) => window.wp.listen(ms, 500), [opt.seconds * 1000]);
  const a = opt.serverPid ? await cpuOver(opt.serverPid, 'server-call-cpu', listen) : await listen();
  if (a.ok) say(`audio ${a.sampleRate} ${a.windows.map((w) => w.hz).join(' ')}`);
  else say(`audio-failed ${a.cause}`);
  log('audio windows:', JSON.stringify(a));
  say(`stats ${JSON.stringify(await page.evaluate(() => window.wp.stats()))}`);
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opt.work, { recursive: true });
  fs.copyFileSync(path.join(__dirname, 'webphone.html'), path.join(opt.work, 'webphone.html'));
  // Served from the same origin as the API would be; file:// pages send `Origin: null`,
  // which the server refuses unless told otherwise (webphone.sh passes --origin null).
  const url = 'file://' + path.join(opt.work, 'webphone.html');
  let bs = null;
  if (opt.baresipCtrl) {
    bs = new Baresip(opt.baresipCtrl);
    await bs.connect();
  }
  const { ctx, udd } = await launch(opt);
  const shutdown = async (code) => {
    if (bs) bs.close();
    await ctx.close().catch(() => {});
    fs.rmSync(udd, { recursive: true, force: true });
    process.exit(code);
  };
  process.on('SIGTERM', () => shutdown(143));
  const page = await ctx.newPage();
  page.on('console', (m) => log('console:', m.text()));
  page.on('pageerror', (e) => log('pageerror:', e.message));
  await page.goto(url);
  const c = await page.evaluate((a) => window.wp.connect(...a), [opt.url, opt.authname, opt.password || '', 'Web Phone']);
  if (!c.ok) {
    say(`refused ${c.reason}`);
    return shutdown(opt.mode === 'connect' ? 0 : 1);
  }
  say('connected');
  if (opt.mode === 'connect') return shutdown(0);

  if (opt.mode === 'call' || opt.mode === 'close-tab') {
    if (opt.serverPid) await cpuOver(opt.serverPid, 'server-idle-cpu', () => new Promise((r) => setTimeout(r, opt.seconds * 1000)));
    const clicked = Date.now();
    const r = await page.evaluate((a) => window.wp.call(...a), [opt.target, opt.codecs, opt.timeout]);
    if (!r.ok) {
      say(`call-failed ${r.reason}`);
      return shutdown(1);
    }
    // baresip reports the INVITE's offer as CALL_REMOTE_SDP as soon as it arrives.
    const incoming = bs && (await bs.waitEvent('CALL_REMOTE_SDP', 1000));
    if (incoming) {
      say(`invite-ms ${incoming.receivedAt - clicked}`);
      say(`server-invite-ms ${incoming.receivedAt - r.sentAt}`);
    }
    say(`offer-ms ${r.offerMs}`);
    say(`accepted ${JSON.stringify(r.accepted)}`);
    if (bs && !(await bs.waitEvent('CALL_ESTABLISHED', opt.timeout))) say('baresip-not-established');
    if (!bs) {
      await measure(page, opt);
      say(`bye ${JSON.stringify(await page.evaluate(() => window.wp.hangup()))}`);
    } else if (opt.mode === 'close-tab') {
      await new Promise((r) => setTimeout(r, 1000));
      const t = Date.now();
      await page.close();
      say('tab-closed');
      const e = await bs.waitEvent('CALL_CLOSED', 10000);
      say(e ? `far-end-closed ${Date.now() - t}` : 'far-end-not-closed');
    } else {
      await measure(page, opt);
      // DTMF both ways into the SIP side: the sendDTMF request, then RTCDTMFSender.
      const d = await page.evaluate(() => window.wp.request('sendDTMF', { digit: '5' }));
      const e5 = await bs.waitEvent('CALL_DTMF_START', 3000, (p) => String(p).includes('5'));
      say(e5 ? 'dtmf-api 5' : `dtmf-api-missing ${JSON.stringify(d)}`);
      const ins = await page.evaluate(() => window.wp.insertDTMF('7'));
      const e7 = await bs.waitEvent('CALL_DTMF_START', 3000, (p) => String(p).includes('7'));
      say(e7 ? 'dtmf-browser 7' : `dtmf-browser-missing ${ins}`);
      say(`bye ${JSON.stringify(await page.evaluate(() => window.wp.hangup()))}`);
      if (!(await bs.waitEvent('CALL_CLOSED', 5000))) say('baresip-not-closed');
    }
  } else {
    const answered = page.evaluate((a) => window.wp.answerNext(...a), [opt.codecs, opt.timeout]);
    if (bs) {
      const d = await bs.command('dial', opt.dial);
      say(`dialed ${d.ok ? 'ok' : 'error ' + JSON.stringify(d.data)}`);
    }
    const r = await answered;
    if (!r.ok) {
      say(`call-failed ${r.reason}`);
      return shutdown(1);
    }
    say(`accepted ${JSON.stringify(r.accepted)}`);
    say(`from ${r.from}`);
    if (bs && !(await bs.waitEvent('CALL_ESTABLISHED', opt.timeout))) say('baresip-not-established');
    await measure(page, opt);
    if (bs) {
      const h = await bs.command('hangup', '');
      say(`remote-hangup ${h.ok ? 'ok' : 'error ' + JSON.stringify(h.data)}`);
    }
    const b = await page.evaluate((ms) => window.wp.waitEvent('byed', ms), bs ? 5000 : opt.timeout);
    say(b ? 'byed' : 'byed-timeout');
  }
  say('done');
  return shutdown(0);
}

main().catch((e) => {
  log('webphone error:', e && e.stack ? e.stack : e);
  say(`error ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  process.exit(1);
});
