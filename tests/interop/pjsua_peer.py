#!/usr/bin/env python3
"""A pjsua2 (PJSIP) user agent for the interop checks: a SIP phone we did not write.

usage:
  pjsua_peer.py --server HOST:PORT --user NAME --password PW --sip-port P --rtp-port R
                --play WAV --record WAV [--codec speex/16000] (--answer | --call URI)
                [--seconds N] [--wait N]

It registers NAME@HOST:PORT with digest at the SIP server HOST:PORT (UDP, loopback), with
the null sound device: its "microphone" is the WAV file (looped, AudioMediaPlayer) and
what it hears goes to a WAV recorder (the conference clock rate, 16 kHz mono s16). Only
CODEC (default speex/16000) is enabled, plus telephone-event, which pjsua always offers.
--answer: wait up to --wait seconds for a call and answer it with 200; --call: place a
call to URI. The call is hung up after --seconds (if the other side has not done so).

It prints one event per line on stdout:
  registered CODE        the REGISTER's final status
  invited FROM           an incoming call
  confirmed              the call is established
  media CODEC/RATE PT    the audio stream in use (pjsua's stream info: what was agreed)
  offer-codecs LIST      the codecs of the remote's offer (incoming calls: from the INVITE)
  disconnected CODE REASON
Exit status 0 when a call was established and ended, 1 otherwise. PJSIP's log (with the
SIP messages) goes to stderr, at level $PJ_LOG (default 4; 5 shows its jitter buffer).
"""
import argparse
import os
import re
import sys
import time

import pjsua2 as pj


# PJSIP writes its log to file descriptor 1 (from libCreate on): the events keep the real
# stdout, and fd 1 becomes stderr.
EVENTS = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)


def say(*words):
    print(*words, file=EVENTS, flush=True)


class Peer:
    def __init__(self, args):
        self.args = args
        self.call = None
        self.player = None
        self.recorder = None
        self.state = "idle"  # idle -> confirmed -> done
        self.confirmed_at = None
        self.ended = False
        self.refused = []  # calls answered 486, kept alive until they end


class Call(pj.Call):
    def __init__(self, peer, acc, call_id=pj.PJSUA_INVALID_ID):
        pj.Call.__init__(self, acc, call_id)
        self.peer = peer

    def onCallState(self, prm):
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            say("confirmed")
            self.peer.state = "confirmed"
            self.peer.confirmed_at = time.monotonic()
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            say("disconnected", ci.lastStatusCode, ci.lastReason)
            self.peer.ended = self.peer.state == "confirmed"
            self.peer.state = "done"

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            si = self.getStreamInfo(mi.index)
            say("media", f"{si.codecName}/{si.codecClockRate}", si.txPt)
            am = self.getAudioMedia(mi.index)
            self.peer.player.startTransmit(am)
            am.startTransmit(self.peer.recorder)


class Account(pj.Account):
    def __init__(self, peer):
        pj.Account.__init__(self)
        self.peer = peer

    def onRegState(self, prm):
        say("registered", prm.code)

    def onIncomingCall(self, prm):
        codecs = re.findall(r"^a=rtpmap:\d+ (\S+)", prm.rdata.wholeMsg.replace("\r", ""), re.M)
        call = Call(self.peer, self, prm.callId)
        say("invited", call.getInfo().remoteUri)
        say("offer-codecs", " ".join(codecs))
        if self.peer.call is not None or not self.peer.args.answer:
            op = pj.CallOpParam()
            op.statusCode = 486
            call.hangup(op)
            self.peer.refused.append(call)
            return
        self.peer.call = call
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--rtp-port", type=int, required=True)
    ap.add_argument("--play", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--codec", default="speex/16000")
    ap.add_argument("--answer", action="store_true")
    ap.add_argument("--call")
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--wait", type=float, default=30)
    args = ap.parse_args()
    if bool(args.answer) == bool(args.call):
        ap.error("give one of --answer and --call")

    peer = Peer(args)
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    # One thread: every callback runs in libHandleEvents below.
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = False
    cfg.uaConfig.userAgent = "pjsua2 interop peer"
    cfg.logConfig.level = int(os.environ.get("PJ_LOG", "4"))
    cfg.logConfig.consoleLevel = cfg.logConfig.level
    cfg.logConfig.msgLogging = 1
    cfg.medConfig.clockRate = 16000
    cfg.medConfig.sndClockRate = 16000
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()

    tcfg = pj.TransportConfig()
    tcfg.port = args.sip_port
    tcfg.boundAddress = "127.0.0.1"
    tcfg.publicAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()

    want = args.codec.lower()
    found = None
    for c in ep.codecEnum2():
        on = found is None and c.codecId.lower().startswith(want + "/")
        found = c.codecId if on else found
        ep.codecSetPriority(c.codecId, 255 if on else 0)
    # No PLC and no perceptual enhancer in PJSIP's Speex decoder: when its jitter buffer
    # runs empty (a loaded CI machine delays a packet by a few tens of ms), concealment on
    # a pure test tone makes that decoder diverge into clipping for the rest of the call
    # (seen in its log as "Jitter buffer empty ... plc invoked", then noise), although the
    # RTP it gets is byte-identical to that of good runs. A lost frame is silence instead.
    if found:
        prm = ep.codecGetParam(found)
        prm.setting.plc = False
        prm.setting.penh = False
        ep.codecSetParam(found, prm)
    else:
        raise SystemExit(f"pjsua2 has no codec {args.codec}: "
                         + " ".join(c.codecId for c in ep.codecEnum2()))

    peer.player = pj.AudioMediaPlayer()
    peer.player.createPlayer(args.play)  # loops
    peer.recorder = pj.AudioMediaRecorder()
    peer.recorder.createRecorder(args.record)

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.server}"
    acfg.regConfig.registrarUri = f"sip:{args.server}"
    acfg.regConfig.timeoutSec = 300
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    acfg.mediaConfig.transportConfig.port = args.rtp_port
    acfg.mediaConfig.transportConfig.portRange = 10
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
    acc = Account(peer)
    acc.create(acfg)

    deadline = time.monotonic() + args.wait
    placed = False
    hung_up = False
    while time.monotonic() < deadline:
        ep.libHandleEvents(20)
        info = acc.getInfo()
        if args.call and not placed and info.regIsActive:
            peer.call = Call(peer, acc)
            op = pj.CallOpParam(True)
            peer.call.makeCall(args.call, op)
            placed = True
        if peer.state == "done":
            break
        up = peer.confirmed_at is not None and time.monotonic() - peer.confirmed_at
        if up and not hung_up and up > args.seconds:
            peer.call.hangup(pj.CallOpParam())
            hung_up = True
            deadline = min(deadline, time.monotonic() + 5)
    # Let the BYE's answer and the last frames through, then close the WAV file (its
    # header is written when the recorder is destroyed).
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        ep.libHandleEvents(20)
    del peer.recorder
    del peer.player
    peer.call = None
    acc.shutdown()
    ep.libDestroy()
    if not peer.ended:
        print("pjsua_peer: no call was established and ended", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
