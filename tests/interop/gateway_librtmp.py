#!/usr/bin/env python3
"""python-librtmp (a third-party RTMP client) as a Flash phone on the gateway's `sip` app.

usage:
  gateway_librtmp.py call PORT AOR AUTHNAME AUTHPASS DEST FLV SECONDS [CODEC...]
      invite(DEST, CODEC...), wait for `accepted`, publish the FLV's audio tags on `local`
      in real time for SECONDS, then bye().
  gateway_librtmp.py answer PORT AOR AUTHNAME AUTHPASS FLV SECONDS [CODEC...]
      wait (20 s) for `invited`, accept(CODEC...), wait for `accepted`, publish for up to
      SECONDS, and expect `byed` (the caller hangs up) before the end.
  gateway_librtmp.py callvideo PORT AOR AUTHNAME AUTHPASS DEST FLV SECONDS [CODEC...]
      as `call`, publishing the FLV's video (and audio) tags.
  gateway_librtmp.py record PORT AOR AUTHNAME AUTHPASS OUT SECONDS [CODEC...]
      wait (20 s) for `invited`, accept(CODEC...), wait for `accepted`, play `remote` and
      write what arrives (FLV) to OUT for SECONDS.
  gateway_librtmp.py drop PORT AOR AUTHNAME AUTHPASS WHEN [DEST]
      vanish without closing (the process exits, the socket is reset) once WHEN is reached:
      `ringing` (after invite(DEST) rang), `call` (2 s into the call with DEST), or
      `incoming` (on `invited`).
The client connects to rtmp://127.0.0.1:PORT/sip/AOR with (AUTHNAME, AUTHPASS, "Alice").
Prints every callback as `callback NAME ARGS`; exit 0 on success, else 1 with the reason on
stderr. Loopback only.
"""
import os
import sys
import time

import librtmp

CALLBACKS = ("ringing", "accepted", "rejected", "byed", "invited", "cancelled", "holded", "dtmf")


class Phone:
    def __init__(self, port, aor, user, password, playpath="local"):
        app = f"sip/{aor}"
        self.conn = librtmp.RTMP(f"rtmp://127.0.0.1:{port}/{app}", app=app, playpath=playpath,
                                 live=True, connect_data=[user, password, "Alice"], timeout=10)
        self.seen = []
        for name in CALLBACKS:
            self._handler(name)
        self.conn.connect()
        print("connected", flush=True)

    def _handler(self, name):
        def on_call(*args):
            print("callback", name, *args, flush=True)
            self.seen.append(name)
        on_call.__name__ = name
        self.conn.invoke_handler(on_call)

    def call(self, method, *args):
        return self.conn.call(method, *args).result()

    def wait(self, name, seconds, stop=("rejected", "byed", "cancelled")):
        deadline = time.time() + seconds
        while name not in self.seen and not any(s in self.seen for s in stop):
            if time.time() >= deadline:
                break
            try:
                self.conn.process_packets(invoked_method=name, timeout=1)
            except librtmp.RTMPTimeoutError:
                pass
        if name not in self.seen:
            fail(f"no {name} callback (callbacks: {self.seen})")

    def publish(self, flv, seconds, kinds=(8,)):
        stream = self.conn.create_stream(writeable=True)
        data = open(flv, "rb").read()
        pos, t0, sent = 13, time.time(), 0
        while pos + 11 <= len(data) and time.time() < t0 + seconds:
            kind = data[pos]
            size = int.from_bytes(data[pos + 1:pos + 4], "big")
            ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
            tag = data[pos:pos + 11 + size + 4]
            pos += 11 + size + 4
            if kind not in kinds:
                continue
            delay = ts / 1000.0 - (time.time() - t0)
            if delay > 0:
                time.sleep(delay)
            stream.write(tag)
            sent += 1
        print("published", sent, "tags", flush=True)
        if sent < 50:
            fail(f"only {sent} tags published")
        return stream


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)


def main():
    a = sys.argv[1:]
    if len(a) >= 8 and a[0] == "call":
        port, aor, user, password, dest, flv, seconds = a[1:8]
        p = Phone(port, aor, user, password)
        print("invite result", p.call("invite", dest, *a[8:]), flush=True)
        p.wait("accepted", 15)
        stream = p.publish(flv, float(seconds))
        p.call("bye")
        stream.close()
        p.conn.close()
    elif len(a) >= 8 and a[0] == "callvideo":
        port, aor, user, password, dest, flv, seconds = a[1:8]
        p = Phone(port, aor, user, password)
        print("invite result", p.call("invite", dest, *a[8:]), flush=True)
        p.wait("accepted", 15)
        stream = p.publish(flv, float(seconds), kinds=(8, 9))
        p.call("bye")
        stream.close()
        p.conn.close()
    elif len(a) >= 7 and a[0] == "record":
        port, aor, user, password, out, seconds = a[1:7]
        p = Phone(port, aor, user, password, playpath="remote")
        p.wait("invited", 20)
        p.call("accept", *a[7:])
        p.wait("accepted", 10)
        stream = p.conn.create_stream()
        end, size = time.time() + float(seconds), 0
        with open(out, "wb") as f:
            while time.time() < end:
                data = stream.read(65536)
                if not data:
                    break
                f.write(data)
                size += len(data)
        print("recorded", size, "bytes", flush=True)
        p.conn.close()
    elif len(a) >= 7 and a[0] == "answer":
        port, aor, user, password, flv, seconds = a[1:7]
        p = Phone(port, aor, user, password)
        p.wait("invited", 20)
        p.call("accept", *a[7:])
        p.wait("accepted", 10)
        # librtmp reads no callbacks while it writes: `byed` waits in the socket until the
        # publishing ends (closing the stream would close the connection).
        stream = p.publish(flv, float(seconds))
        p.wait("byed", 10, stop=())
        stream.close()
        p.conn.close()
    elif len(a) >= 6 and a[0] == "drop":
        port, aor, user, password, when = a[1:6]
        dest = a[6] if len(a) > 6 else ""
        p = Phone(port, aor, user, password)
        if when == "incoming":
            p.wait("invited", 20)
        else:
            p.call("invite", dest, "pcmu", "dtmf")
            p.wait("ringing" if when == "ringing" else "accepted", 15)
            if when == "call":
                time.sleep(2)
        print("dropping", flush=True)
        os._exit(0)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
