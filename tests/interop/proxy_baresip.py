#!/usr/bin/env python3
"""Drive baresip softphones through their ctrl_tcp interface (netstring-framed JSON) for
the proxy checks.

usage:
  proxy_baresip.py registered CTRL_PORT [SECONDS]
      wait (default 10 s) until `reginfo` shows the account registered ("OK"); exit 1 if not.
  proxy_baresip.py call CALLER_CTRL CALLEE_CTRL URI SECONDS
      caller dials URI; both sides must report CALL_ESTABLISHED within 10 s (the callee
      auto-answers: answermode=auto); after SECONDS the caller hangs up and both must report
      CALL_CLOSED within 5 s. Prints every event as a JSON line; exit 0 on success, else 1
      with the reason on stderr.
Requests are {"command":..,"params":..,"token":..}; baresip answers
{"response":true,"ok":..,"data":..,"token":..} and pushes {"event":true,"type":..,...}.
Only ever connects to 127.0.0.1.
"""
import json
import re
import socket
import sys
import time


class Ctrl:
    def __init__(self, name, port):
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=3)
        self.buf = b""
        self.events = []
        self.n = 0

    def send(self, command, params=""):
        self.n += 1
        token = f"{self.name}{self.n}"
        payload = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(b"%d:%s," % (len(payload), payload))
        return token

    def recv(self, deadline):
        """Next decoded object, or None at the deadline or when baresip closes."""
        while True:
            colon = self.buf.find(b":")
            if colon > 0:
                n = int(self.buf[:colon])
                end = colon + 1 + n
                if len(self.buf) > end:
                    obj = json.loads(self.buf[colon + 1:end])
                    self.buf = self.buf[end + 1:]
                    if obj.get("event"):
                        obj["ua"] = self.name
                        print(json.dumps(obj), flush=True)
                        self.events.append(obj)
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

    def command(self, command, params="", timeout=5):
        token = self.send(command, params)
        deadline = time.time() + timeout
        while True:
            m = self.recv(deadline)
            if m is None:
                raise SystemExit(f"{self.name}: no response to {command}")
            if m.get("response") and m.get("token") == token:
                return m.get("ok"), m.get("data", "")

    def wait_event(self, kind, deadline):
        """True once an event of type kind has been seen (now or earlier)."""
        while not any(e.get("type") == kind for e in self.events):
            if self.recv(deadline) is None and time.time() >= deadline:
                return False
        return True


def strip_ansi(s):
    return re.sub(r"\x1b\[[0-9;]*m", "", s)


def registered(port, seconds):
    deadline = time.time() + seconds
    last = ""
    while time.time() < deadline:
        try:
            c = Ctrl("ua", port)
            ok, data = c.command("reginfo")
            c.sock.close()
            last = strip_ansi(data)
            if re.search(r"\bOK\b", last):
                return True
        except (OSError, SystemExit):
            pass
        time.sleep(0.2)
    print(f"not registered after {seconds:g} s: {last.strip()!r}", file=sys.stderr)
    return False


def call(caller_port, callee_port, uri, seconds):
    a = Ctrl("caller", caller_port)
    b = Ctrl("callee", callee_port)
    ok, data = a.command("dial", uri)
    if not ok:
        print(f"dial {uri} refused: {strip_ansi(data)}", file=sys.stderr)
        return False
    deadline = time.time() + 10
    for ua in (a, b):
        if not ua.wait_event("CALL_ESTABLISHED", deadline):
            seen = [e.get("type") for e in ua.events]
            print(f"{ua.name}: no CALL_ESTABLISHED within 10 s (events: {seen})", file=sys.stderr)
            return False
    # Keep both sockets drained while the call runs.
    end = time.time() + seconds
    while time.time() < end:
        for ua in (a, b):
            ua.recv(min(end, time.time() + 0.1))
    for ua in (a, b):
        if any(e.get("type") == "CALL_CLOSED" for e in ua.events):
            print(f"{ua.name}: call closed before the hangup", file=sys.stderr)
            return False
    a.command("hangup")
    deadline = time.time() + 5
    for ua in (a, b):
        if not ua.wait_event("CALL_CLOSED", deadline):
            print(f"{ua.name}: no CALL_CLOSED within 5 s of the hangup", file=sys.stderr)
            return False
    return True


def main():
    a = sys.argv[1:]
    if len(a) in (2, 3) and a[0] == "registered":
        sys.exit(0 if registered(a[1], float(a[2]) if len(a) > 2 else 10) else 1)
    elif len(a) == 5 and a[0] == "call":
        sys.exit(0 if call(a[1], a[2], a[3], float(a[4])) else 1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
