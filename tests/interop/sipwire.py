#!/usr/bin/env python3
"""Raw SIP over UDP/TCP from plain sockets: readiness probes and malformed input.

usage: sipwire.py [--tcp] [--timeout S] HOST PORT KIND
KIND:
  options      a well-formed OPTIONS                  (expect 200)
  garbage      a datagram of random bytes             (expect no answer)
  bad-maxfwd   REGISTER with "Max-Forwards: lots"     (expect 400 naming the header)
  big          an OPTIONS of about 9 KiB              (expect 513)
Prints the status line of the first response received ("SIP/2.0 200 OK"), or
"NO RESPONSE". Exit status: 0 if something was received, 1 if not, 2 on usage error.
All traffic goes to HOST, which the suite only ever sets to 127.0.0.1.
"""
import os
import random
import socket
import sys


def request(method, local, ruri, extra=(), body=b"", to_user="probe"):
    host, port = local
    branch = "z9hG4bK" + os.urandom(8).hex()
    tag = os.urandom(4).hex()
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{{transport}} {host}:{port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{to_user}@127.0.0.1>;tag={tag}",
        f"To: <sip:{to_user}@127.0.0.1>",
        f"Call-ID: {os.urandom(8).hex()}@sipwire",
        f"CSeq: 1 {method}",
        f"Contact: <sip:{to_user}@{host}:{port}>",
    ]
    lines += list(extra)
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def build(kind, local, transport, ruri):
    if kind == "options":
        msg = request("OPTIONS", local, ruri)
    elif kind == "garbage":
        rnd = random.Random(7)
        return bytes(rnd.randrange(256) for _ in range(300))
    elif kind == "bad-maxfwd":
        msg = request("REGISTER", local, ruri, extra=["Expires: 60"])
        msg = msg.replace(b"Max-Forwards: 70", b"Max-Forwards: lots")
    elif kind == "big":
        msg = request("OPTIONS", local, ruri, extra=["X-Padding: " + "a" * 9000])
    else:
        sys.exit(f"unknown kind {kind!r}")
    return msg.replace(b"{transport}", transport.encode())


def main():
    args = sys.argv[1:]
    tcp = False
    timeout = 2.0
    while args and args[0].startswith("--"):
        if args[0] == "--tcp":
            tcp = True
            args = args[1:]
        elif args[0] == "--timeout":
            timeout = float(args[1])
            args = args[2:]
        else:
            break
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, port, kind = args[0], int(args[1]), args[2]
    if tcp:
        s = socket.create_connection((host, port), timeout=timeout)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.connect((host, port))
    s.settimeout(timeout)
    # Request-URI: the server itself (host:port), so a proxy answers instead of forwarding.
    data = build(kind, s.getsockname(), "TCP" if tcp else "UDP", f"sip:{host}:{port}")
    if tcp:
        s.sendall(data)
    else:
        s.send(data)
    try:
        resp = s.recv(65536)
    except (socket.timeout, ConnectionRefusedError, ConnectionResetError):
        resp = b""
    s.close()
    if not resp:
        print("NO RESPONSE")
        sys.exit(1)
    print(resp.split(b"\r\n", 1)[0].decode("utf-8", "replace"))
    sys.exit(0)


if __name__ == "__main__":
    main()
