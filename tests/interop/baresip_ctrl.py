#!/usr/bin/env python3
"""Minimal client for baresip's ctrl_tcp module (netstring-framed JSON).

usage:
  baresip_ctrl.py cmd PORT COMMAND [PARAMS]   send one command, print the response's "data"
                                              (exit 0 if the response says ok, else 1)
  baresip_ctrl.py listen PORT SECONDS         print every event received for SECONDS,
                                              one JSON object per line
Requests are {"command":..,"params":..,"token":..}; baresip answers
{"response":true,"ok":..,"data":..,"token":..} and pushes {"event":true,"type":..,...}.
Only ever connects to 127.0.0.1.
"""
import json
import socket
import sys
import time


class Netstrings:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, obj):
        payload = json.dumps(obj).encode()
        self.sock.sendall(b"%d:%s," % (len(payload), payload))

    def recv(self, deadline):
        """Next decoded object, or None when the deadline passes or the peer closes."""
        while True:
            colon = self.buf.find(b":")
            if colon > 0:
                n = int(self.buf[:colon])
                end = colon + 1 + n
                if len(self.buf) > end:
                    obj = json.loads(self.buf[colon + 1:end])
                    self.buf = self.buf[end + 1:]  # skip the trailing ','
                    return obj
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self.buf += data


def connect(port):
    return Netstrings(socket.create_connection(("127.0.0.1", int(port)), timeout=3))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "cmd":
        conn = connect(sys.argv[2])
        params = sys.argv[4] if len(sys.argv) > 4 else ""
        conn.send({"command": sys.argv[3], "params": params, "token": "t1"})
        deadline = time.time() + 5
        while True:
            m = conn.recv(deadline)
            if m is None:
                print("no response", file=sys.stderr)
                sys.exit(1)
            if m.get("response") and m.get("token") == "t1":
                print(m.get("data", ""))
                sys.exit(0 if m.get("ok") else 1)
    elif len(sys.argv) == 4 and sys.argv[1] == "listen":
        conn = connect(sys.argv[2])
        deadline = time.time() + float(sys.argv[3])
        while True:
            m = conn.recv(deadline)
            if m is None:
                break
            if m.get("event"):
                print(json.dumps(m), flush=True)
        sys.exit(0)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
