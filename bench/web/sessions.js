#!/usr/bin/env node
// Concurrent /phone sessions one switchboard process holds (bench/web/sessions.sh): opens
// WebSockets to /phone/uI@127.0.0.1 (node's WebSocket: run with --experimental-websocket),
// each sending `connect` with uI's password, so each is a line registered (digest) at the
// server, as a signed-in web phone tab is; ramps up in STEPS (cumulative totals), keeping
// every earlier session open. After each step: how many are connected, how long the step
// took, the server's RSS and its CPU over HOLD seconds of holding them all (keep-alives).
//
// usage: node --experimental-websocket sessions.js --http PORT --pid SERVER_PID
//             [--steps "250 500 1000"] [--hold 10] [--batch 50]
// prints: step TOTAL connected=N refused=N failed=N ms=N rss-mib=N hold-cpu-pct=N
'use strict';

const fs = require('fs');
const { cpuNs, say } = require('../../tests/interop/browser/lib');

function parseArgs(argv) {
  const opt = { steps: '250 500 1000', hold: 10, batch: 50 };
  for (let i = 0; i < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!opt.http || !opt.pid) throw new Error('--http and --pid are required');
  opt.steps = opt.steps.split(/\s+/).filter(Boolean).map(Number);
  opt.hold = Number(opt.hold);
  opt.batch = Number(opt.batch);
  return opt;
}


function rssMib(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}

// One session: resolves 'connected', 'refused' or 'failed' (socket error, close, 15 s).
function session(opt, i, open) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${opt.http}/phone/u${i}@127.0.0.1`);
    const done = (r) => { clearTimeout(timer); resolve(r); };
    const timer = setTimeout(() => done('failed'), 15000);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connect', authname: `u${i}`, authpass: `pw${i}` }));
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'connected') { open.push(ws); done('connected'); }
      else if (m.type === 'refused') done('refused');
    };
    ws.onerror = () => done('failed');
    ws.onclose = () => done('failed');
  });
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const open = [];
  let n = 0;
  for (const total of opt.steps) {
    const count = { connected: 0, refused: 0, failed: 0 };
    const t0 = Date.now();
    while (n < total) {
      const batch = [];
      for (let k = 0; k < opt.batch && n < total; k++) batch.push(session(opt, ++n, open));
      for (const r of await Promise.all(batch)) count[r]++;
    }
    const ms = Date.now() - t0;
    const c0 = cpuNs(opt.pid);
    const h0 = Date.now();
    await new Promise((r) => setTimeout(r, opt.hold * 1000));
    const cpu = ((cpuNs(opt.pid) - c0) / 1e6 / (Date.now() - h0)) * 100;
    const alive = open.filter((ws) => ws.readyState === WebSocket.OPEN).length;
    say(`step ${total} connected=${count.connected} refused=${count.refused} failed=${count.failed} ` +
      `open=${alive} ms=${ms} rss-mib=${rssMib(opt.pid)} hold-cpu-pct=${cpu.toFixed(2)}`);
    if (count.refused + count.failed > 0) break;
  }
  for (const ws of open) ws.close();
  say('done');
  setTimeout(() => process.exit(0), 500);
}

main().catch((e) => {
  say(`error ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  process.exit(1);
});
