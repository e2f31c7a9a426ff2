#!/usr/bin/env node
// JsSIP (a third-party SIP-over-WebSocket UA, RFC 7118) registering to switchboard.
//
// usage: node register.js WS_URL SIP_URI PASSWORD [SECONDS]
//   e.g. node register.js ws://127.0.0.1:15300/sip sip:carol@127.0.0.1 secret 30
//
// Prints "registered <contact>" once the REGISTER got its 200. Then, after SECONDS or on
// SIGTERM/SIGINT/SIGUSR1, closes the WebSocket WITHOUT unregistering (so the server must
// drop the binding because the flow closed), prints "closed" and exits 0.
// Exits 1 on registration failure or if the socket drops before we close it.
'use strict';

// Node 20 has no global WebSocket; JsSIP's WebSocketInterface does
// `new WebSocket(url, 'sip')`, so give it the `ws` package (same constructor shape).
globalThis.WebSocket = require('ws');
const JsSIP = require('jssip');

const [url, uri, password, secondsArg] = process.argv.slice(2);
if (!url || !uri || password === undefined) {
  console.error('usage: node register.js WS_URL SIP_URI PASSWORD [SECONDS]');
  process.exit(2);
}
const seconds = Number(secondsArg || 30);
// Warnings (e.g. why a challenge was refused) always go to stderr; JSSIP_DEBUG=1 for everything.
JsSIP.debug.enable(process.env.JSSIP_DEBUG ? 'JsSIP:*' : 'JsSIP:WARN:*,JsSIP:ERROR:*');

const socket = new JsSIP.WebSocketInterface(url);
const ua = new JsSIP.UA({
  sockets: [socket],
  uri,
  password,
  register: true,
  register_expires: 600,
  session_timers: false,
  // Do not let JsSIP reconnect (and re-register) after we close the socket on purpose.
  connection_recovery_min_interval: 60,
  connection_recovery_max_interval: 60,
});

let closing = false;
let registered = false;

function finish(code, line) {
  if (line) console.log(line);
  // Exit without ua.stop(): stop() would send an un-REGISTER, which is not what we test.
  process.exit(code);
}

function closeSocket() {
  if (closing) return;
  closing = true;
  const ws = socket._ws;
  if (!ws) finish(0, 'closed');
  // Plain WebSocket close (code 1000): the server sees the flow end.
  ws.onclose = () => finish(0, 'closed');
  ws.close(1000, 'test done');
  setTimeout(() => finish(0, 'closed (no close ack)'), 2000);
}

ua.on('registered', (e) => {
  if (registered) return;
  registered = true;
  const contact = ua.contact ? ua.contact.toString() : '?';
  console.log(`registered ${contact}`);
  setTimeout(closeSocket, seconds * 1000);
});
ua.on('registrationFailed', (e) => {
  const status = e.response ? `${e.response.status_code} ${e.response.reason_phrase}` : e.cause;
  finish(1, `registrationFailed ${status}`);
});
ua.on('disconnected', (e) => {
  if (!closing) finish(1, `disconnected before the test closed the socket (${e.code || ''} ${e.reason || ''})`);
});

for (const sig of ['SIGTERM', 'SIGINT', 'SIGUSR1']) process.on(sig, closeSocket);
// Hard bound: never outlive SECONDS + 15.
setTimeout(() => finish(1, 'timeout'), (seconds + 15) * 1000).unref();

ua.start();
