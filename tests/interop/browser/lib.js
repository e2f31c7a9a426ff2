// Shared by driver.js (JsSIP over /sip) and webphone.js (the /phone JSON API): the
// step printer, Chromium with a fake microphone, and baresip's ctrl_tcp client.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');

const say = (line) => process.stdout.write(line + '\n');
const log = (...a) => console.error(new Date().toISOString().slice(11, 23), ...a);

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
        obj.receivedAt = Date.now();
        this.events.push(obj);
        log('baresip event:', JSON.stringify(obj));
        say(`baresip ${obj.type} ${obj.param || ''}`.trim());
        this.waiters = this.waiters.filter((w) => !((w.ok ? w.ok(obj) : w.type === obj.type) && (w.resolve(obj), true)));
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

  // The first event of this type (already seen or still to come) whose param satisfies
  // `param` (any, when absent), or null after ms.
  waitEvent(type, ms, param) {
    const ok = (e) => e.type === type && (!param || param(e.param));
    const seen = this.events.find(ok);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const w = { type, resolve, ok };
      this.waiters.push(w);
      setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); resolve(null); }, ms);
    });
  }

  close() {
    if (this.sock) this.sock.destroy();
  }
}

// CPU time of every thread of process PID, in ns (/proc/PID/task/*/schedstat, field 1).
function cpuNs(pid) {
  let total = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch (_) { /* thread gone */ }
  }
  return total;
}

module.exports = { Baresip, cpuNs, launch, log, say };
