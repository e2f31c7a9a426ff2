#!/usr/bin/env bash
# Issue 8 benchmark: the web phone's call setup time and the server's CPU per WebRTC call.
# Runs tests/interop/webphone.sh's three call checks (headless Chromium → switchboard →
# baresip, each in its own loopback-only network namespace) against a release build, with
# WEBPHONE_SERVER_CPU=1: every call reports
#   invite-ms        the call button (node, just before the page makes its offer) to
#                    baresip's CALL_REMOTE_SDP event (the INVITE arrived through the proxy);
#   server-invite-ms the page's `invite` message leaving to that event: the server's
#                    share (JSON, WebRTC answer, line, proxy hop) plus baresip's parsing;
#   offer-ms         the page's own share of that (before the prepared offer: microphone,
#                    createOffer, ICE gathering);
#   server-idle-cpu  CPU ns of every server thread over SECONDS before the call;
#   server-call-cpu  the same over SECONDS of the call (audio flowing both ways).
# CPU per call = (call - idle) / wall time, in % of one core. The test page (webphone.html)
# prepares its offer while idle, as the SDK does, so offer-ms is now taking that offer.
# Then, per run, the product page (web/app.js on web/switchboard.js, served by the server)
# in tests/interop/webui.sh webui_calls_baresip:
#   click-invite-ms  the call button's click event (its timeStamp) to baresip's
#                    CALL_REMOTE_SDP: the whole path a person waits for;
#   click-sent-ms    the click event to the page's `invite` message leaving;
# and bench/web/webphone.sh web_first_audio (FIRST_AUDIO_CALLS page-to-page calls, default 5):
#   first-audio-ms         bob's `accept` message leaving → first audio on alice's page;
#   answer-first-audio-ms  bob's page deciding to answer (`invited`) → the same.
# Usage: bench/web/run.sh [RUNS]   (env: SECONDS_PER_CALL=15; SERVERS="a=PATH b=PATH" runs
# prebuilt release binaries under those names, alternating within each run, for A/B
# comparisons on a shared machine; default: build one here). Needs what webphone.sh needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/switchboard-target}
RUNS=${1:-3}
OUT=bench/web/out
mkdir -p "$OUT"

if [[ -z ${SERVERS:-} ]]; then
    cargo build --release -q -p switchboard --bin switchboard
    cp "$CARGO_TARGET_DIR/release/switchboard" "$OUT/switchboard"
    SERVERS="switchboard=$PWD/$OUT/switchboard"
fi

echo "# $(date -u +%FT%TZ) $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
    for server in $SERVERS; do
        name=${server%%=*} bin=${server#*=}
        SWITCHBOARD=$bin INTEROP_WORK=$PWD/$OUT/$name/run$run WEBPHONE_SERVER_CPU=1 \
            WEBPHONE_SECONDS=${SECONDS_PER_CALL:-15} tests/interop/webphone.sh \
            webphone_calls_baresip_pcmu webphone_calls_baresip_opus webphone_transcodes_opus_pcmu |
            tee "$OUT/$name-run$run.txt"
        SWITCHBOARD=$bin INTEROP_WORK=$PWD/$OUT/$name/run$run tests/interop/webui.sh \
            webui_calls_baresip | tee -a "$OUT/$name-run$run.txt"
        SWITCHBOARD=$bin INTEROP_WORK=$PWD/$OUT/$name/run$run CALLS=${FIRST_AUDIO_CALLS:-5} \
            bench/web/webphone.sh web_first_audio | tee -a "$OUT/$name-run$run.txt"
        echo "# $name run $run done; load $(cut -d' ' -f1-3 /proc/loadavg)"
    done
done

for server in $SERVERS; do
    name=${server%%=*}
    echo "## $name"
    python3 - "$OUT/$name" "$RUNS" <<'PY'
import re, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
names = {"webphone_calls_baresip_pcmu": "PCMU pass-through",
         "webphone_calls_baresip_opus": "Opus pass-through",
         "webphone_transcodes_opus_pcmu": "Opus (browser) <-> PCMU (SIP), transcoded"}
print("| call | call button → INVITE ms (median, all) | of which page offer ms | invite message → INVITE ms | server CPU idle | server CPU in call | per call |")
print("|---|---|---|---|---|---|---|")
for check, label in names.items():
    inv, off, srv, idle, call = [], [], [], [], []
    for r in range(1, runs + 1):
        try:
            text = open(f"{out}/run{r}/{check}/wp.out").read()
        except OSError:
            continue
        g = lambda k: re.search(rf"^{k} (\d+)(?: (\d+))?$", text, re.M)
        if (m := g("invite-ms")): inv.append(int(m[1]))
        if (m := g("offer-ms")): off.append(int(m[1]))
        if (m := g("server-invite-ms")): srv.append(int(m[1]))
        if (m := g("server-idle-cpu")): idle.append(int(m[1]) / 1e9 / (int(m[2]) / 1e3) * 100)
        if (m := g("server-call-cpu")): call.append(int(m[1]) / 1e9 / (int(m[2]) / 1e3) * 100)
    if not call:
        print(f"| {label} | no data | | | | | |")
        continue
    per = [c - i for c, i in zip(call, idle)]
    print(f"| {label} | {statistics.median(inv):.0f} ({', '.join(map(str, inv))}) | "
          f"{statistics.median(off):.0f} | {statistics.median(srv):.0f} ({', '.join(map(str, srv))}) | "
          f"{statistics.median(idle):.3f} % | "
          f"{statistics.median(call):.3f} % | {statistics.median(per):.3f} % of a core "
          f"({', '.join(f'{p:.2f}' for p in per)}) |")

def values(path, key):
    try:
        return [int(v) for v in re.findall(rf"^{key} (-?\d+)$", open(path).read(), re.M)]
    except OSError:
        return []

sent, inv, fa, afa = [], [], [], []
for r in range(1, runs + 1):
    sent += values(f"{out}/run{r}/webui_calls_baresip/ui.out", "click-sent-ms")
    inv += values(f"{out}/run{r}/webui_calls_baresip/ui.out", "click-invite-ms")
    fa += values(f"{out}/run{r}/web_first_audio/bench.out", "first-audio-ms")
    afa += values(f"{out}/run{r}/web_first_audio/bench.out", "answer-first-audio-ms")
med = lambda v: f"{statistics.median(v):.0f} ({', '.join(map(str, v))})" if v else "no data"
print()
print("| product page (web/app.js) | median (all) |")
print("|---|---|")
print(f"| click → `invite` message sent | {med(sent)} |")
print(f"| click → INVITE at baresip | {med(inv)} |")
print(f"| `accept` sent → first audio (page to page) | {med(fa)} |")
print(f"| answer decided (`invited`) → first audio | {med(afa)} |")
PY
done
