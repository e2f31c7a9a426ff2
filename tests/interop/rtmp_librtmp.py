#!/usr/bin/env python3
"""python-librtmp (librtmp through cffi) as the RTMP client for tests/interop/rtmp.sh.

usage:
  rtmp_librtmp.py publish URL NAME TYPE FLV
      connect, createStream, publish(NAME, TYPE) with TYPE live|record|append (ffmpeg and
      rtmpdump can only publish "live"), then send the FLV file's tags as RTMP messages in
      real time; prints the onStatus code the publish got ("status CODE") and the number of
      tags sent; closeStream/deleteStream at the end. Exit 1 if publishing was refused.
  rtmp_librtmp.py rpc URL
      connect with extra args (alice, secret, Alice Example); call echo("a", 2) and print
      its _result; call invite("sip:bob@example.com"), print its _result, wait for the
      server-initiated call invited(from, to), answer it with _result("ringing").
Prints one line per step; the caller checks them.
"""
import sys
import time

import librtmp
from librtmp.amf import decode_amf, encode_amf
from librtmp.packet import PACKET_SIZE_LARGE, PACKET_TYPE_INVOKE, RTMPPacket


def invoke(conn, stream_id, method, transaction_id, *args):
    """A command on any message stream (python-librtmp's call() only uses stream 0), sent
    without librtmp's bookkeeping: it would answer a createStream _result by itself with
    a play or publish of its own."""
    body = b"".join(encode_amf(x) for x in [method, float(transaction_id), None] + list(args))
    pkt = RTMPPacket(type=PACKET_TYPE_INVOKE, format=PACKET_SIZE_LARGE, channel=8, body=body)
    pkt.packet.m_nInfoField2 = stream_id
    conn.send_packet(pkt, queue=False)


def wait_invoke(conn, want, timeout=5.0):
    """The first command for which want(values) is true; other packets go to librtmp."""
    end = time.time() + timeout
    while time.time() < end:
        pkt = conn.read_packet()
        if pkt.type == PACKET_TYPE_INVOKE:
            values = decode_amf(pkt.body)
            if values and want(values):
                return values
        else:
            conn.handle_packet(pkt)
    return None


def wait_status(conn, timeout=5.0):
    values = wait_invoke(conn, lambda v: v[0] == "onStatus" and len(v) > 3, timeout)
    return values[3].get("code") if values else None


def flv_tags(path):
    data = open(path, "rb").read()
    pos = int.from_bytes(data[5:9], "big") + 4
    while pos + 11 <= len(data):
        kind = data[pos]
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11:pos + 11 + size]
        if len(body) < size:
            return
        yield kind, ts, body
        pos += 11 + size + 4


def publish(url, name, kind, flv):
    conn = librtmp.RTMP(url, live=True, connect_data=["alice", "secret"], timeout=10)
    conn.connect()
    invoke(conn, 0, "createStream", 2)
    result = wait_invoke(conn, lambda v: v[0] == "_result" and v[1] == 2)
    stream_id = int(result[3])
    invoke(conn, stream_id, "publish", 0, name, kind)
    code = wait_status(conn)
    print("status", code, flush=True)
    if code != "NetStream.Publish.Start":
        conn.close()
        sys.exit(1)
    start = time.time()
    sent = 0
    for tag_type, ts, body in flv_tags(flv):
        delay = ts / 1000.0 - (time.time() - start)
        if delay > 0:
            time.sleep(delay)
        channel = {8: 4, 9: 6}.get(tag_type, 5)
        pkt = RTMPPacket(type=tag_type, format=PACKET_SIZE_LARGE, channel=channel,
                         timestamp=ts, absolute_timestamp=True, body=body)
        pkt.packet.m_nInfoField2 = stream_id
        conn.send_packet(pkt, queue=False)
        sent += 1
    print("sent", sent, flush=True)
    invoke(conn, stream_id, "closeStream", 0)
    print("closed", wait_status(conn), flush=True)
    invoke(conn, 0, "deleteStream", 0, float(stream_id))
    time.sleep(0.3)
    conn.close()


def rpc(url):
    conn = librtmp.RTMP(url, connect_data=["alice", "secret", "Alice Example"], timeout=5)
    invited = []

    def invited_handler(frm, to):
        invited.append((frm, to))
        print("invited", frm, to, flush=True)
        return "ringing"

    conn.register_invoke_handler("invited", invited_handler)
    conn.connect()
    print("echo", conn.call("echo", "a", 2.0).result(timeout=5), flush=True)
    print("invite", conn.call("invite", "sip:bob@example.com").result(timeout=5), flush=True)
    if not invited:
        conn.process_packets(invoked_method="invited", timeout=5)
    # Let the _result for invited reach the server before closing.
    time.sleep(0.5)
    conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(*sys.argv[2:6])
    elif sys.argv[1] == "rpc":
        rpc(sys.argv[2])
    else:
        sys.exit(__doc__)
