#!/usr/bin/env node
// A second anchor for web_sip_calls (bench/web/webphone.sh janus_sip_calls): the same
// browser -> SIP phone calls through Janus (Meetecho's WebRTC server) and its SIP plugin,
// which makes each browser a SIP user agent and bridges its DTLS-SRTP to plain RTP. One
// headless Chromium (fake microphone: a tone), CALLS tabs with the test page; for each,
// a Janus session with the SIP plugin (HTTP API), a guest "registration" (none sent), then
// `call` to the phone (a sipp UAS answering PCMU and playing a 1000 Hz tone) with the tab's
// offer (PCMU and telephone-event only: Janus does not transcode), its answer back to the
// tab. Reported: Janus's CPU (every thread's schedstat) over SECONDS with every tab open and
// no call, then over SECONDS with every call up; every caller must hear the phone's tone.
//
// usage: node janus.js --work DIR --wav FILE --pid JANUS_PID --api URL --phone URI
//                      [--calls N] [--seconds S]
// prints: calls N, accepted CODEC (first call), server-idle-cpu NS MS,
//         server-calls-cpu NS MS, phone-heard N, call-failed WHY, done
'use strict';

const { log } = require('../../tests/interop/browser/lib');
const { callThePhone, fatal, onlyCodecs, parseArgs } = require('./common');

let transactions = 0;

async function post(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ transaction: `t${++transactions}`, ...body }),
  });
  const j = await res.json();
  if (j.janus === 'error') throw new Error(`janus ${body.janus}: ${j.error.code} ${j.error.reason}`);
  return j;
}

// One Janus session with a SIP plugin handle; its events by long poll.
class SipHandle {
  constructor(api) {
    this.api = api;
    this.events = [];
    this.waiters = [];
    this.open = true;
  }

  async start() {
    this.session = (await post(this.api, { janus: 'create' })).data.id;
    this.handle = (await post(`${this.api}/${this.session}`, { janus: 'attach', plugin: 'janus.plugin.sip' })).data.id;
    this.poll();
  }

  async poll() {
    while (this.open) {
      try {
        const res = await fetch(`${this.api}/${this.session}?maxev=5&rid=${Date.now()}`);
        const got = await res.json();
        for (const e of [].concat(got)) this.onEvent(e);
      } catch (e) {
        if (this.open) log('janus poll:', String(e));
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  onEvent(e) {
    if (e.janus !== 'event' || e.sender !== this.handle) return;
    const ev = { result: e.plugindata?.data?.result || {}, error: e.plugindata?.data?.error, jsep: e.jsep };
    this.events.push(ev);
    this.waiters = this.waiters.filter((w) => !(w.match(ev) && (w.resolve(ev), true)));
  }

  // The first event (seen or to come) whose result.event is one of `names`, or an error.
  wait(names, ms) {
    const match = (ev) => ev.error || names.includes(ev.result.event);
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no ${names.join('/')} from janus within ${ms} ms`));
      }, ms);
    });
  }

  message(body, jsep) {
    return post(`${this.api}/${this.session}/${this.handle}`, { janus: 'message', body, ...(jsep ? { jsep } : {}) });
  }

  async close() {
    this.open = false;
    await post(`${this.api}/${this.session}`, { janus: 'destroy' }).catch(() => {});
  }
}

// One call: a guest SIP identity, the tab's offer in a `call` to the phone, the answer back.
async function call(page, i, opt) {
  const h = new SipHandle(opt.api);
  await h.start();
  await h.message({ request: 'register', type: 'guest', username: `sip:u${i}@127.0.0.1` });
  const reg = await h.wait(['registered', 'registration_failed'], 10000);
  if (reg.error || reg.result.event !== 'registered') throw new Error(`guest register: ${JSON.stringify(reg)}`);
  const offer = onlyCodecs(await page.evaluate(() => window.wp.rawOffer()), 'PCMU');
  await h.message({ request: 'call', uri: opt.phone }, { type: 'offer', sdp: offer });
  const ans = await h.wait(['accepted', 'hangup'], 15000);
  if (ans.error || ans.result.event !== 'accepted' || !ans.jsep) throw new Error(`call: ${JSON.stringify(ans)}`);
  await page.evaluate((sdp) => window.wp.rawAnswer(sdp), ans.jsep.sdp);
  const codec = /^a=rtpmap:\d+ ([^\r\n]+)/m.exec(ans.jsep.sdp);
  return { h, codec: codec ? codec[1] : '?' };
}

async function main() {
  const opt = parseArgs(process.argv.slice(2), ['work', 'wav', 'pid', 'api', 'phone']);
  const handles = [];
  await callThePhone(opt, {
    call: async (page, i) => {
      const c = await call(page, i, opt);
      handles.push(c.h);
      return c;
    },
    hangup: async ({ h }) => {
      await h.message({ request: 'hangup' });
      await h.wait(['hangup'], 5000);
    },
    close: () => Promise.all(handles.map((h) => h.close())),
  });
}

main().catch(fatal);
