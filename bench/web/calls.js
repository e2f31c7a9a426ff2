#!/usr/bin/env node
// Server CPU per WebRTC call with several calls at once (bench/web/webphone.sh web_calls):
// one headless Chromium (fake microphone: a tone), 2 × CALLS tabs signed in to /phone as
// u1 … u(2·CALLS); tab u(2i−1) calls u(2i), which accepts: CALLS page-to-page calls up at
// the same time, each two WebRTC legs (browser ↔ switchboard) joined by two lines and
// plain RTP through the server. Reported: the server's CPU (every thread's schedstat)
// over SECONDS with every tab signed in and no call, then over SECONDS with every call
// up (audio both ways). With --callee-codecs (e.g. "pcmu dtmf") the callees' pages offer
// and take other codecs than the callers': the caller's line then transcodes (Opus ↔ PCMU),
// one conversion per call. With --callee-uri (e.g. sip:phone@127.0.0.1, a sipp UAS playing
// a 1000 Hz tone) only the CALLS callers' tabs sign in, and each calls that SIP phone: a WebRTC leg and
// a plain RTP leg per call, the line passing through (--codecs "pcmu dtmf") or transcoding
// (--codecs "opus pcmu dtmf" to a PCMU phone).
//
// usage: node calls.js --work DIR --http PORT --wav FILE --pid SERVER_PID
//                      [--calls N] [--seconds S] [--codecs "opus dtmf"] [--callee-codecs LIST]
//                      [--callee-uri URI]
// prints: calls N, accepted JSON (first call), server-idle-cpu NS MS, server-calls-cpu NS MS,
//         call-failed WHY, done
'use strict';

const fs = require('fs');
const { launch, log, say } = require('../../tests/interop/browser/lib');
const { cpuOver, testPage } = require('./common');

function parseArgs(argv) {
  const opt = { calls: 2, seconds: 10, codecs: 'opus dtmf' };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['work', 'http', 'wav', 'pid']) if (!opt[k]) throw new Error(`--${k} is required`);
  opt.calls = Number(opt.calls);
  opt.seconds = Number(opt.seconds);
  opt.codecs = opt.codecs.split(/[ ,]+/).filter(Boolean);
  opt['callee-codecs'] = opt['callee-codecs'] ? opt['callee-codecs'].split(/[ ,]+/).filter(Boolean) : opt.codecs;
  return opt;
}

async function tab(ctx, url, opt, user, pw) {
  const page = await ctx.newPage();
  page.on('console', (m) => log(`${user} console:`, m.text()));
  await page.goto(url);
  const c = await page.evaluate(
    (a) => window.wp.connect(...a),
    [`ws://127.0.0.1:${opt.http}/phone/${user}@127.0.0.1`, user, pw, user],
  );
  if (!c.ok) throw new Error(`${user} refused: ${c.reason}`);
  return page;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const html = testPage(opt.work);
  const { ctx, udd } = await launch(opt);
  try {
    const pairs = [];
    for (let i = 1; i <= opt.calls; i++) {
      const a = await tab(ctx, 'file://' + html, opt, `u${2 * i - 1}`, `pw${2 * i - 1}`);
      if (opt['callee-uri']) {
        pairs.push({ a, uri: opt['callee-uri'] });
        continue;
      }
      const b = await tab(ctx, 'file://' + html, opt, `u${2 * i}`, `pw${2 * i}`);
      pairs.push({ a, b, uri: `sip:u${2 * i}@127.0.0.1` });
    }
    say(`calls ${opt.calls}`);
    await cpuOver(opt.pid, 'server-idle-cpu', opt.seconds * 1000);
    const results = await Promise.all(
      pairs.map(({ a, b, uri }) => {
        const ans = b
          ? b.evaluate((x) => window.wp.answerNext(...x), [opt['callee-codecs'], 20000])
          : { ok: true, accepted: 'a SIP phone' };
        const call = a.evaluate((x) => window.wp.call(...x), [uri, opt.codecs, 20000]);
        return Promise.all([ans, call]);
      }),
    );
    const failed = results.find(([ans, call]) => !ans.ok || !call.ok);
    if (failed) {
      say(`call-failed ${JSON.stringify(failed)}`);
      process.exitCode = 1;
      return;
    }
    say(`accepted ${JSON.stringify(results[0][1].accepted)}`);
    say(`callee-accepted ${JSON.stringify(results[0][0].accepted ?? results[0][0])}`);
    // Past the DTLS handshakes and the browsers' first jitter-buffer adaptation.
    await new Promise((r) => setTimeout(r, 2000));
    await cpuOver(opt.pid, 'server-calls-cpu', opt.seconds * 1000);
    if (opt['callee-uri']) {
      // Each caller must hear the phone's 1000 Hz tone.
      const heard = await Promise.all(pairs.map(({ a }) => a.evaluate(() => window.wp.listen(1000, 500))));
      const deaf = heard.findIndex((h) => !h.ok || !h.windows.some((w) => Math.abs(w.hz - 1000) < 30 && w.db > -70));
      if (deaf >= 0) {
        say(`call-failed caller ${deaf + 1} did not hear the phone: ${JSON.stringify(heard[deaf])}`);
        process.exitCode = 1;
      } else say(`phone-heard ${heard.length}`);
    }
    for (const { a } of pairs) await a.evaluate(() => window.wp.hangup()).catch(() => {});
    say('done');
  } finally {
    await ctx.close().catch(() => {});
    fs.rmSync(udd, { recursive: true, force: true });
  }
}

main().catch((e) => {
  say(`error ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  process.exit(1);
});
