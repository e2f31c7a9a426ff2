#!/usr/bin/env node
// Answer → first audio, page to page (bench/web/first_audio.sh): per call, two fresh tabs of
// one headless Chromium (fake microphone: a tone) connect to switchboard's /phone API as
// alice and bob; alice calls bob, bob's page accepts; reported is the time from bob's
// `accept` message leaving his page to the first remote audio alice's page decodes (RMS of
// the remote track above -40 dBFS, WebAudio polled every 2 ms). One clock: both tabs run
// in the same browser. The path: bob's microphone → his WebRTC leg (ICE + DTLS, set up by
// the accept) → his line → SIP/RTP → alice's line → her WebRTC leg → her page.
// Also reported: from bob's page deciding to answer (the `invited` event; the page answers
// at once) to that first audio, which adds his microphone opening and taking his offer
// (prepared before the call: webphone.html).
//
// usage: node first_audio.js --work DIR --http PORT --wav FILE [--calls N] [--codecs "opus dtmf"]
// prints: first-audio-ms N, answer-first-audio-ms N (one each per call), accepted JSON,
//         call-failed WHY, done
'use strict';

const fs = require('fs');
const { launch, log, say } = require('../../tests/interop/browser/lib');
const { testPage } = require('./common');

function parseArgs(argv) {
  const opt = { calls: 10, codecs: 'opus pcmu dtmf' };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['work', 'http', 'wav']) if (!opt[k]) throw new Error(`--${k} is required`);
  opt.calls = Number(opt.calls);
  opt.codecs = opt.codecs.split(/[ ,]+/).filter(Boolean);
  return opt;
}

async function tab(ctx, url, opt, user) {
  const page = await ctx.newPage();
  page.on('console', (m) => log(`${user} console:`, m.text()));
  await page.goto(url);
  const c = await page.evaluate(
    (a) => window.wp.connect(...a),
    [`ws://127.0.0.1:${opt.http}/phone/${user}@127.0.0.1`, user, `${user}pw`, user],
  );
  if (!c.ok) throw new Error(`${user} refused: ${c.reason}`);
  return page;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const html = testPage(opt.work);
  const { ctx, udd } = await launch(opt);
  try {
    for (let i = 0; i < opt.calls; i++) {
      const a = await tab(ctx, 'file://' + html, opt, 'alice');
      const b = await tab(ctx, 'file://' + html, opt, 'bob');
      const answering = b.evaluate((x) => window.wp.answerNext(...x), [opt.codecs, 15000]);
      const calling = a.evaluate((x) => window.wp.call(...x), ['sip:bob@127.0.0.1', opt.codecs, 15000]);
      const first = a.evaluate(() => window.wp.firstAudio(15000, -40));
      const [ans, call, f] = await Promise.all([answering, calling, first]);
      if (!ans.ok || !call.ok || !f.ok) {
        say(`call-failed ${JSON.stringify({ ans, call, f })}`);
      } else {
        say(`first-audio-ms ${f.at - ans.sentAt}`);
        say(`answer-first-audio-ms ${f.at - ans.answerAt}`);
        if (i === 0) say(`accepted ${JSON.stringify(call.accepted)}`);
      }
      await a.evaluate(() => window.wp.hangup()).catch(() => {});
      await b.evaluate(() => window.wp.waitEvent('byed', 5000)).catch(() => {});
      await a.close();
      await b.close();
    }
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
