// What the bench/web drivers share: the test page in a work directory and a CPU window.
'use strict';

const fs = require('fs');
const path = require('path');
const { cpuNs, say } = require('../../tests/interop/browser/lib');

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

module.exports = { cpuOver, testPage };
