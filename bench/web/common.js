// What the bench/web drivers share: the test page in a work directory and a CPU window.
'use strict';

const fs = require('fs');
const path = require('path');
const { cpuNs, launch, log, say } = require('../../tests/interop/browser/lib');

// tests/interop/browser/webphone.html copied into `work` (created), for file:// loading.
function testPage(work) {
  fs.mkdirSync(work, { recursive: true });
  const html = path.join(work, 'webphone.html');
  fs.copyFileSync(path.join(__dirname, '../../tests/interop/browser/webphone.html'), html);
  return html;
}

// Prints "WHAT NS MS": the CPU nanoseconds process `pid` used over the next `ms`.
async function cpuOver(pid, what, ms) {
  const c0 = cpuNs(pid);
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  say(`${what} ${cpuNs(pid) - c0} ${Date.now() - t0}`);
}

// The offer with only `codec` and telephone-event, as a page offering those would make it
// (what Switchboard's `invite` does with its `codecs` argument), for a relay that takes the
// offer as it comes.
function onlyCodecs(sdp, codec) {
  const lines = sdp.split('\r\n');
  const keep = new Set(lines
    .map((l) => /^a=rtpmap:(\d+) ([^/]+)\//.exec(l))
    .filter((m) => m && [codec.toLowerCase(), 'telephone-event'].includes(m[2].toLowerCase()))
    .map((m) => m[1]));
  return lines
    .filter((l) => {
      const pt = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)/.exec(l);
      return !pt || keep.has(pt[1]);
    })
    .map((l) => (l.startsWith('m=audio ') ? l.split(' ').filter((f, i) => i < 3 || keep.has(f)).join(' ') : l))
    .join('\r\n');
}

// "--key value" pairs; `required` must be there; calls and seconds are numbers.
function parseArgs(argv, required) {
  const opt = { calls: 2, seconds: 10 };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of required) if (!opt[k]) throw new Error(`--${k} is required`);
  opt.calls = Number(opt.calls);
  opt.seconds = Number(opt.seconds);
  return opt;
}

// An anchor's run of browser -> phone calls (rtpengine.js, janus.js): opt.calls pages with
// the test page, the relay's CPU (opt.pid) over opt.seconds idle, `call(page, i)` for each
// (→ {codec, ...}), the CPU over opt.seconds with every call up; every caller must hear the
// phone's 1000 Hz; then `check(calls)` (optional, true when fine), `hangup(each)`, `close`.
async function callThePhone(opt, { call, check, hangup, close }) {
  const html = testPage(opt.work);
  const { ctx, udd } = await launch(opt);
  try {
    const pages = [];
    for (let i = 1; i <= opt.calls; i++) {
      const page = await ctx.newPage();
      page.on('console', (m) => log(`u${i} console:`, m.text()));
      await page.goto('file://' + html);
      pages.push(page);
    }
    say(`calls ${opt.calls}`);
    await cpuOver(opt.pid, 'server-idle-cpu', opt.seconds * 1000);
    const calls = await Promise.all(pages.map((p, i) => call(p, i + 1)));
    say(`accepted ${calls[0].codec}`);
    // Past the DTLS handshakes and the browsers' first jitter-buffer adaptation.
    await new Promise((r) => setTimeout(r, 2000));
    await cpuOver(opt.pid, 'server-calls-cpu', opt.seconds * 1000);
    const heard = await Promise.all(pages.map((p) => p.evaluate(() => window.wp.listen(1000, 500))));
    const deaf = heard.findIndex((h) => !h.ok || !h.windows.some((w) => Math.abs(w.hz - 1000) < 30 && w.db > -70));
    if (deaf >= 0) {
      say(`call-failed caller ${deaf + 1} did not hear the phone: ${JSON.stringify(heard[deaf])}`);
      process.exitCode = 1;
    } else say(`phone-heard ${heard.length}`);
    if (check && !(await check(calls))) process.exitCode = 1;
    for (const c of calls) await hangup(c).catch((e) => log(String(e)));
    say('done');
  } finally {
    if (close) await close();
    await ctx.close().catch(() => {});
    fs.rmSync(udd, { recursive: true, force: true });
  }
}

// The last words of a driver that failed.
function fatal(e) {
  say(`error ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  process.exit(1);
}

module.exports = { callThePhone, cpuOver, fatal, onlyCodecs, parseArgs, testPage };
