#!/usr/bin/env python3
"""Per-hop proxy latency from a loopback capture (tcpdump -i lo, nanosecond stamps).

usage: hop_latency.py CAPTURE.pcap PROXY_PORT
For every call, the time from the proxy receiving a message (INVITE from the UAC, 200
from the UAS, ...) to the proxy sending it on, matched by Call-ID + CSeq + kind.
Prints one JSON object: {kind: {n, p50_us, p90_us, p99_us}}.
"""
import json
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    else:
        end = ">"
        magic = struct.unpack(">I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off : off + 16])
        off += 16
        pkt = data[off : off + incl]
        off += incl
        t = sec + frac / (1e9 if nano else 1e6)
        if linktype == 1:  # Ethernet (Linux lo)
            if pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
        elif linktype == 113:  # Linux cooked
            ip = pkt[16:]
        elif linktype == 276:  # Linux cooked v2
            ip = pkt[20:]
        elif linktype in (0, 108):  # BSD loopback
            ip = pkt[4:]
        elif linktype == 101:
            ip = pkt
        else:
            raise SystemExit(f"unsupported link type {linktype}")
        if not ip or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack(">HH", ip[ihl : ihl + 4])
        yield t, sport, dport, ip[ihl + 8 :]


def header(payload, name, short):
    for line in payload.split(b"\r\n"):
        if not line:
            break
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k in (name, short):
            return v.strip()
    return None


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    i = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[i]


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    first_in, first_out = {}, {}
    for t, sport, dport, payload in packets(path):
        start = payload.split(b"\r\n", 1)[0]
        cid = header(payload, b"call-id", b"i")
        cseq = header(payload, b"cseq", b"cseq")
        if cid is None or cseq is None:
            continue
        if start.startswith(b"SIP/2.0 "):
            code = start.split()[1].decode()
            if code == "100":
                continue  # hop-by-hop, not forwarded
            kind = f"{code}/{cseq.split()[-1].decode()}"
        else:
            kind = start.split()[0].decode()
        key = (cid, cseq, kind)
        if dport == port and sport != port:
            first_in.setdefault(key, t)
        elif sport == port and dport != port:
            first_out.setdefault(key, t)
    lat = {}
    for key, t_in in first_in.items():
        t_out = first_out.get(key)
        if t_out is not None and t_out >= t_in:
            lat.setdefault(key[2], []).append((t_out - t_in) * 1e6)
    out = {}
    for kind, v in sorted(lat.items()):
        out[kind] = {
            "n": len(v),
            "p50_us": round(pct(v, 50), 1),
            "p90_us": round(pct(v, 90), 1),
            "p99_us": round(pct(v, 99), 1),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
