#!/usr/bin/env python3
"""Drive one baresip (ctrl_tcp) for the `switchboard phone` checks.

usage:
  phone_baresip.py dial CTRL_PORT URI SECONDS
      dial URI; the call must be established within 10 s (CALL_ESTABLISHED), stay up
      SECONDS, then baresip hangs up and must report CALL_CLOSED within 5 s.
  phone_baresip.py answered CTRL_PORT SECONDS
      wait up to SECONDS for an incoming call to be established (baresip auto-answers)
      and then closed by the other side.
  phone_baresip.py closed CTRL_PORT SECONDS [URI]
      (dial URI first, if given, then) wait up to SECONDS for a call to be closed; prints
      the close reason.
Prints every event as a JSON line; exit 0 on success, else 1 with the reason on stderr.
Only ever connects to 127.0.0.1 (Ctrl from proxy_baresip.py).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy_baresip import Ctrl, strip_ansi  # noqa: E402


def seen(ua, kind):
    return any(e.get("type") == kind for e in ua.events)


def dial(port, uri, seconds):
    ua = Ctrl("baresip", port)
    ok, data = ua.command("dial", uri)
    if not ok:
        print(f"dial {uri} refused: {strip_ansi(data)}", file=sys.stderr)
        return False
    if not ua.wait_event("CALL_ESTABLISHED", time.time() + 10):
        kinds = [e.get("type") for e in ua.events]
        print(f"no CALL_ESTABLISHED within 10 s (events: {kinds})", file=sys.stderr)
        return False
    end = time.time() + seconds
    while time.time() < end:
        ua.recv(min(end, time.time() + 0.1))
    if seen(ua, "CALL_CLOSED"):
        print("call closed before baresip hung up", file=sys.stderr)
        return False
    ua.command("hangup")
    if not ua.wait_event("CALL_CLOSED", time.time() + 5):
        print("no CALL_CLOSED within 5 s of the hangup", file=sys.stderr)
        return False
    return True


def answered(port, seconds):
    ua = Ctrl("baresip", port)
    deadline = time.time() + seconds
    # On a loaded machine this watcher can connect after CALL_ESTABLISHED went by; media
    # events (RTP established, RTCP) also prove the call was answered and up.
    while not any(seen(ua, k) for k in ("CALL_ESTABLISHED", "CALL_RTPESTAB", "CALL_RTCP")):
        if time.time() >= deadline:
            break
        ua.recv(min(deadline, time.time() + 0.1))
    if not any(seen(ua, k) for k in ("CALL_ESTABLISHED", "CALL_RTPESTAB", "CALL_RTCP")):
        kinds = [e.get("type") for e in ua.events]
        print(f"no call established within {seconds:g} s (events: {kinds})", file=sys.stderr)
        return False
    if not ua.wait_event("CALL_CLOSED", deadline):
        print(f"the call was not closed within {seconds:g} s", file=sys.stderr)
        return False
    return True


def closed(port, seconds, uri=None):
    ua = Ctrl("baresip", port)
    if uri:
        ok, data = ua.command("dial", uri)
        if not ok:
            print(f"dial {uri} refused: {strip_ansi(data)}", file=sys.stderr)
            return False
    deadline = time.time() + seconds
    if not ua.wait_event("CALL_CLOSED", deadline):
        kinds = [e.get("type") for e in ua.events]
        print(f"no CALL_CLOSED within {seconds:g} s (events: {kinds})", file=sys.stderr)
        return False
    reason = [e.get("param") for e in ua.events if e.get("type") == "CALL_CLOSED"][0]
    print(f"closed: {reason}", flush=True)
    return True


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "dial":
        sys.exit(0 if dial(a[1], a[2], float(a[3])) else 1)
    elif len(a) in (3, 4) and a[0] == "closed":
        sys.exit(0 if closed(a[1], float(a[2]), a[3] if len(a) > 3 else None) else 1)
    elif len(a) == 3 and a[0] == "answered":
        sys.exit(0 if answered(a[1], float(a[2])) else 1)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
