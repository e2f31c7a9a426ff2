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
  gateway_librtmp.py videocall PORT AOR AUTHNAME AUTHPASS DEST FLV OUT SECONDS [CODEC...]
      as `callvideo`, and on the same connection also play `remote` (a second stream, the
      way Flash does it) and write what arrives (FLV) to OUT; then bye().
  gateway_librtmp.py videocall-nokey PORT AOR AUTHNAME AUTHPASS DEST FLV OUT SECONDS [CODEC...]
      as `videocall`, but the FLV's first key frame is left out: the far end's decoder
      starts on inter frames and has to ask for a key frame.
  gateway_librtmp.py videoanswer PORT AOR AUTHNAME AUTHPASS FLV OUT SECONDS [CODEC...]
      wait (20 s) for `invited`, accept(CODEC...), then as `videocall` until SECONDS have
      passed or the caller hangs up (`byed`).
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
from librtmp.amf import decode_amf
from librtmp.packet import PACKET_SIZE_LARGE, PACKET_TYPE_INVOKE, RTMPPacket

from rtmp_librtmp import flv_tags, invoke

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


    def on_invoke(self, pkt):
        """A command from the server: a callback is printed; other values are returned."""
        try:
            values = decode_amf(pkt.body)
        except Exception:  # noqa: BLE001 - not ours to judge
            return None
        if values and values[0] in CALLBACKS:
            print("callback", values[0], *values[3:], flush=True)
            self.seen.append(values[0])
        return values

    def new_stream(self, transaction_id):
        invoke(self.conn, 0, "createStream", transaction_id)
        deadline = time.time() + 5
        while time.time() < deadline:
            pkt = self.conn.read_packet()
            if pkt.type != PACKET_TYPE_INVOKE:
                self.conn.handle_packet(pkt)
                continue
            v = self.on_invoke(pkt)
            if v and v[0] == "_result" and v[1] == transaction_id and len(v) > 3:
                return int(v[3])
        fail("no createStream result")

    def publish_and_play(self, flv, out, seconds, skip_first_key=False):
        """Publishes the FLV's audio and video tags on `local` in real time while writing
        what arrives on `remote` to OUT (FLV), on two streams of this connection, until
        SECONDS have passed or the call ends. librtmp is single-threaded: between tags it
        reads the next message, which the far end's audio (every 20 ms) never delays
        long."""
        local, remote = self.new_stream(100), self.new_stream(101)
        invoke(self.conn, local, "publish", 0, "local", "live")
        invoke(self.conn, remote, "play", 0, "remote", -1000)
        tags = [t for t in flv_tags(flv) if t[0] in (8, 9)]
        if skip_first_key:
            # FLV AVC: frame type 1 (key) with packet type 1 (NAL units).
            first = next(i for i, t in enumerate(tags) if t[0] == 9 and t[2][:2] == b"\x17\x01")
            del tags[first]
        t0, sent, got, i = time.time(), 0, {8: 0, 9: 0}, 0
        with open(out, "wb") as f:
            f.write(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
            while time.time() < t0 + seconds and "byed" not in self.seen:
                while i < len(tags) and tags[i][1] / 1000.0 <= time.time() - t0:
                    kind, ts, body = tags[i]
                    pkt = RTMPPacket(type=kind, format=PACKET_SIZE_LARGE,
                                     channel=4 if kind == 8 else 6, timestamp=ts,
                                     absolute_timestamp=True, body=body)
                    pkt.packet.m_nInfoField2 = local
                    self.conn.send_packet(pkt, queue=False)
                    sent, i = sent + 1, i + 1
                try:
                    pkt = self.conn.read_packet()
                except librtmp.RTMPTimeoutError:
                    continue
                if pkt.type in (8, 9) and pkt.packet.m_nInfoField2 == remote:
                    body, ts = pkt.body, pkt.timestamp
                    f.write(bytes([pkt.type]) + len(body).to_bytes(3, "big")
                            + (ts & 0xFFFFFF).to_bytes(3, "big") + bytes([ts >> 24 & 0xFF])
                            + b"\x00\x00\x00" + body + (11 + len(body)).to_bytes(4, "big"))
                    got[pkt.type] += 1
                elif pkt.type == PACKET_TYPE_INVOKE:
                    self.on_invoke(pkt)
                else:
                    self.conn.handle_packet(pkt)
        print("published", sent, "tags; received", got[9], "video and", got[8], "audio tags",
              flush=True)
        if sent < 50:
            fail(f"only {sent} tags published")


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
    elif len(a) >= 9 and a[0] in ("videocall", "videocall-nokey"):
        port, aor, user, password, dest, flv, out, seconds = a[1:9]
        p = Phone(port, aor, user, password)
        print("invite result", p.call("invite", dest, *a[9:]), flush=True)
        p.wait("accepted", 15)
        p.publish_and_play(flv, out, float(seconds), skip_first_key=a[0] == "videocall-nokey")
        if "byed" not in p.seen:
            p.call("bye")
        p.conn.close()
    elif len(a) >= 8 and a[0] == "videoanswer":
        port, aor, user, password, flv, out, seconds = a[1:8]
        p = Phone(port, aor, user, password)
        p.wait("invited", 20)
        p.call("accept", *a[8:])
        p.wait("accepted", 10)
        p.publish_and_play(flv, out, float(seconds))
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
