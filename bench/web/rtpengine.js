#!/usr/bin/env node
// The anchor for web_sip_calls (bench/web/webphone.sh rtpengine_sip_calls): the same
// browser -> SIP phone calls with rtpengine (Sipwise's media relay, the one Kamailio
// deployments put between WebRTC and SIP) bridging the media instead of Switchboard.
// One headless Chromium (fake microphone: a tone), CALLS tabs with the test page; each
// tab's offer goes to rtpengine (ng protocol: `offer`, WebRTC -> plain RTP, ICE and
// rtcp-mux removed), rtpengine's SDP goes to the phone (a sipp UAS answering PCMU and
// playing a 1000 Hz tone) in an INVITE sent from here, and the phone's answer goes back
// through rtpengine (`answer`, plain RTP -> DTLS-SRTP with ICE) to the tab. Reported:
// rtpengine's CPU (every thread's schedstat) over SECONDS with every tab open and no
// call, then over SECONDS with every call up; every caller must hear the phone's tone.
// With --transcode, rtpengine offers the phone PCMU only and answers the browser with
// its first codec (Opus): one Opus <-> PCMU conversion per call, as web_sip_calls with
// CODECS="opus pcmu dtmf".
//
// usage: node rtpengine.js --work DIR --wav FILE --pid RTPENGINE_PID --ng PORT --phone PORT
//                          [--calls N] [--seconds S] [--transcode 1]
// prints: calls N, accepted CODEC (first call), server-idle-cpu NS MS,
//         server-calls-cpu NS MS, phone-heard N, relayed {browser, phone} (packets rtpengine
//         received from each side of the first call), call-failed WHY, done
'use strict';

const dgram = require('dgram');
const { log, say } = require('../../tests/interop/browser/lib');
const { callThePhone, fatal, onlyCodecs, parseArgs } = require('./common');

// Bencode (BEP 3), as the ng protocol carries it; the SDPs here are ASCII.
function benc(v) {
  if (typeof v === 'number') return `i${v}e`;
  if (typeof v === 'string') return `${Buffer.byteLength(v)}:${v}`;
  if (Array.isArray(v)) return `l${v.map(benc).join('')}e`;
  return `d${Object.keys(v).sort().map((k) => benc(k) + benc(v[k])).join('')}e`;
}

function bdec(s) {
  let i = 0;
  const value = () => {
    const c = s[i];
    if (c === 'i') {
      const end = s.indexOf('e', i);
      const n = Number(s.slice(i + 1, end));
      i = end + 1;
      return n;
    }
    if (c === 'l' || c === 'd') {
      i++;
      const items = [];
      while (s[i] !== 'e') {
        if (i >= s.length) throw new Error('bencode: unterminated');
        items.push(value());
      }
      i++;
      if (c === 'l') return items;
      const d = {};
      for (let k = 0; k < items.length; k += 2) d[items[k]] = items[k + 1];
      return d;
    }
    const colon = s.indexOf(':', i);
    const len = Number(s.slice(i, colon));
    if (colon < 0 || !Number.isInteger(len)) throw new Error(`bencode: bad string at ${i}`);
    const str = s.slice(colon + 1, colon + 1 + len);
    i = colon + 1 + len;
    return str;
  };
  return value();
}

// ng requests over one UDP socket: "COOKIE DICT", answered "COOKIE DICT".
class Ng {
  constructor(port) {
    this.port = Number(port);
    this.sock = dgram.createSocket('udp4');
    this.pending = new Map();
    this.n = 0;
    this.sock.on('message', (m) => {
      const text = m.toString('latin1');
      const sp = text.indexOf(' ');
      const done = this.pending.get(text.slice(0, sp));
      if (done) done(bdec(text.slice(sp + 1)));
    });
  }

  async request(dict) {
    const cookie = `c${process.pid}_${++this.n}`;
    const msg = Buffer.from(`${cookie} ${benc(dict)}`, 'latin1');
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const reply = new Promise((resolve) => {
          this.pending.set(cookie, resolve);
          setTimeout(() => resolve(null), 1000);
        });
        this.sock.send(msg, this.port, '127.0.0.1');
        const r = await reply;
        if (r) {
          if (r.result !== 'ok') throw new Error(`rtpengine ${dict.command}: ${r.result} ${r['error-reason'] || ''}`);
          return r;
        }
      }
      throw new Error(`rtpengine ${dict.command}: no answer`);
    } finally {
      this.pending.delete(cookie);
    }
  }

  close() {
    this.sock.close();
  }
}

// A SIP UAC for the calls to the phone: INVITE, ACK, BYE over one UDP socket, the
// responses matched by Call-ID and CSeq method (RFC 3261 §17.1.1, no retransmission:
// loopback does not lose datagrams).
class Uac {
  constructor(phonePort) {
    this.phone = Number(phonePort);
    this.sock = dgram.createSocket('udp4');
    this.waiters = [];
    this.sock.on('message', (m) => this.onMessage(m.toString('latin1')));
  }

  bind() {
    return new Promise((resolve) => this.sock.bind(0, '127.0.0.1', () => {
      this.port = this.sock.address().port;
      resolve();
    }));
  }

  onMessage(text) {
    const [head, body = ''] = text.split('\r\n\r\n');
    const lines = head.split('\r\n');
    const status = /^SIP\/2\.0 (\d{3})/.exec(lines[0]);
    if (!status) return;
    const header = (name) => {
      const l = lines.find((x) => x.toLowerCase().startsWith(name.toLowerCase() + ':'));
      return l ? l.slice(l.indexOf(':') + 1).trim() : '';
    };
    const res = { code: Number(status[1]), callId: header('Call-ID'), cseq: header('CSeq'), to: header('To'), body };
    this.waiters = this.waiters.filter((w) => !(w.match(res) && (w.resolve(res), true)));
  }

  // The final response to the request `method` of the call.
  final(callId, method, ms) {
    return new Promise((resolve) => {
      const w = { match: (r) => r.callId === callId && r.cseq.endsWith(method) && r.code >= 200, resolve };
      this.waiters.push(w);
      setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); resolve(null); }, ms);
    });
  }

  send(method, call, cseq, body = '') {
    const uri = `sip:phone@127.0.0.1:${this.phone}`;
    const branch = `z9hG4bK${Math.random().toString(36).slice(2)}`;
    const msg = [
      `${method} ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: <sip:${call.user}@127.0.0.1>;tag=${call.fromTag}`,
      `To: <sip:phone@127.0.0.1>${call.toTag ? `;tag=${call.toTag}` : ''}`,
      `Call-ID: ${call.callId}`,
      `CSeq: ${cseq} ${method}`,
      `Contact: <sip:${call.user}@127.0.0.1:${this.port}>`,
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
    this.sock.send(Buffer.from(msg, 'latin1'), this.phone, '127.0.0.1');
  }

  close() {
    this.sock.close();
  }
}

// One call: the tab's offer through rtpengine to the phone, the answer back.
async function call(page, i, ng, uac, opt) {
  const c = { user: `u${i}`, callId: `bench-${process.pid}-${i}`, fromTag: `f${i}`, toTag: null };
  const offer = onlyCodecs(await page.evaluate(() => window.wp.rawOffer()), opt.transcode ? 'opus' : 'PCMU');
  const toPhone = await ng.request({
    command: 'offer', 'call-id': c.callId, 'from-tag': c.fromTag, sdp: offer,
    'transport-protocol': 'RTP/AVP', ICE: 'remove', 'rtcp-mux': ['demux'],
    replace: ['origin', 'session-connection'],
    ...(opt.transcode ? { codec: { mask: ['opus'], transcode: ['PCMU'] } } : {}),
  });
  const ok = uac.final(c.callId, 'INVITE', 10000);
  uac.send('INVITE', c, 1, toPhone.sdp);
  const res = await ok;
  if (!res || res.code !== 200) throw new Error(`phone answered ${res ? res.code : 'nothing'}`);
  c.toTag = /;tag=([^;>\s]+)/.exec(res.to)[1];
  uac.send('ACK', c, 1);
  const toBrowser = await ng.request({
    command: 'answer', 'call-id': c.callId, 'from-tag': c.fromTag, 'to-tag': c.toTag, sdp: res.body,
    'transport-protocol': 'UDP/TLS/RTP/SAVPF', ICE: 'force', 'rtcp-mux': ['require'],
    replace: ['origin', 'session-connection'],
  });
  await page.evaluate((sdp) => window.wp.rawAnswer(sdp), toBrowser.sdp);
  const media = (sdp) => sdp.split('\r\n').filter((l) => /^(m=|a=rtpmap|a=setup|c=)/.test(l)).join(' | ');
  log(`${c.user} to the phone: ${media(toPhone.sdp)}; the phone: ${media(res.body)}; to the browser: ${media(toBrowser.sdp)}`);
  const codec = /^a=rtpmap:\d+ ([^\r\n]+)/m.exec(toBrowser.sdp);
  return { c, codec: codec ? codec[1] : '?' };
}

// What rtpengine received on each side of the call, by tag: {browser, phone} packets.
async function relayed(c, ng) {
  const q = await ng.request({ command: 'query', 'call-id': c.callId });
  const packets = (tag) => ((q.tags || {})[tag]?.medias || [])
    .flatMap((m) => m.streams || [])
    .reduce((n, st) => n + Number(st.stats?.packets || 0), 0);
  return { browser: packets(c.fromTag), phone: packets(c.toTag) };
}

async function hangup(c, ng, uac) {
  const ok = uac.final(c.callId, 'BYE', 5000);
  uac.send('BYE', c, 2);
  await ok;
  await ng.request({ command: 'delete', 'call-id': c.callId, 'from-tag': c.fromTag }).catch((e) => log(String(e)));
}

async function main() {
  const opt = parseArgs(process.argv.slice(2), ['work', 'wav', 'pid', 'ng', 'phone']);
  const ng = new Ng(opt.ng);
  const uac = new Uac(opt.phone);
  await uac.bind();
  await ng.request({ command: 'ping' }).catch(() => {});
  await callThePhone(opt, {
    call: (page, i) => call(page, i, ng, uac, opt),
    // And the browser's audio reached rtpengine, for it to relay to the phone.
    check: async (calls) => {
      const counts = await Promise.all(calls.map(({ c }) => relayed(c, ng)));
      const mute = counts.findIndex((n) => !(n.browser > 0 && n.phone > 0));
      if (mute >= 0) {
        say(`call-failed call ${mute + 1} relayed nothing one way: ${JSON.stringify(counts[mute])}`);
        return false;
      }
      say(`relayed ${JSON.stringify(counts[0])}`);
      return true;
    },
    hangup: ({ c }) => hangup(c, ng, uac),
    close: () => {
      ng.close();
      uac.close();
    },
  });
}

main().catch(fatal);
