#!/usr/bin/env python3
"""python-librtmp (a third-party RTMP client) as a Flash phone on the gateway's `sip` app.

usage: gateway_librtmp.py PORT AOR AUTHNAME AUTHPASS DEST FLV SECONDS [CODEC...]

Connects to rtmp://127.0.0.1:PORT/sip/AOR with the connect arguments (AUTHNAME, AUTHPASS,
"Alice"), calls invite(DEST, CODEC...), waits for the server-initiated `accepted`
callback, publishes the FLV file's audio tags on `local` in real time for SECONDS, then
calls bye(). Prints every callback as `callback NAME ARGS`; exit 0 when the call was
accepted and the audio sent, else 1 with the reason on stderr. Loopback only.
"""
import sys
import time

import librtmp


def main():
    if len(sys.argv) < 8:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    port, aor, user, password, dest, flv, seconds = sys.argv[1:8]
    codecs = sys.argv[8:]
    app = f"sip/{aor}"
    conn = librtmp.RTMP(f"rtmp://127.0.0.1:{port}/{app}", app=app, playpath="local",
                        live=True, connect_data=[user, password, "Alice"], timeout=10)
    seen = []

    def handler(name):
        def on_call(*args):
            print("callback", name, *args, flush=True)
            seen.append(name)
        on_call.__name__ = name
        conn.invoke_handler(on_call)

    for name in ("ringing", "accepted", "rejected", "byed", "invited", "cancelled", "holded"):
        handler(name)
    conn.connect()
    print("connected", flush=True)
    call = conn.call("invite", dest, *codecs)
    print("invite result", call.result(), flush=True)
    deadline = time.time() + 15
    while "accepted" not in seen and "rejected" not in seen and time.time() < deadline:
        try:
            conn.process_packets(invoked_method="accepted", timeout=1)
        except librtmp.RTMPTimeoutError:
            pass
    if "accepted" not in seen:
        print(f"no accepted callback (callbacks: {seen})", file=sys.stderr)
        sys.exit(1)
    stream = conn.create_stream(writeable=True)
    data = open(flv, "rb").read()
    pos, t0, sent = 13, time.time(), 0
    end = t0 + float(seconds)
    while pos + 11 <= len(data) and time.time() < end:
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        tag = data[pos:pos + 11 + size + 4]
        pos += 11 + size + 4
        if data[pos - 15 - size] != 8:  # audio tags only
            continue
        delay = ts / 1000.0 - (time.time() - t0)
        if delay > 0:
            time.sleep(delay)
        stream.write(tag)
        sent += 1
    print("published", sent, "audio tags", flush=True)
    conn.call("bye")
    time.sleep(0.5)
    stream.close()
    conn.close()
    if sent < 50:
        print(f"only {sent} audio tags published", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
