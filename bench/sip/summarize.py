#!/usr/bin/env python3
"""Turns a bench/sip/run.sh output directory into the markdown results page.

usage: summarize.py OUT_DIR   (reads steps.tsv, memory.tsv, latency.tsv, env.txt)
"""
import csv
import json
import os
import statistics
import sys

PHASES = [
    ("reg_auth", "REGISTER with digest (401 → REGISTER → 200), 1000 users", "registrations/s"),
    ("reg_noauth", "REGISTER without auth, 1000 users", "registrations/s"),
    ("calls", "proxied calls INVITE/200/ACK/BYE, 100 ms hold", "calls/s"),
]
SERVERS = ("kamailio", "switchboard")


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(x, nd=0):
    if x is None:
        return "–"
    return f"{x:,.{nd}f}"


def ratio(a, b, nd=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{nd}f}"


def summarize_phase(rows, phase):
    """Per repetition: each server's highest passing rate, its CPU there, and both servers'
    CPU per call at the highest rate that both passed in that repetition."""
    reps = sorted({int(r["rep"]) for r in rows if r["phase"] == phase})
    per = {s: {"max": [], "cpu_at_max": [], "cpu_common": []} for s in SERVERS}
    common_rates, limits = [], []
    for rep in reps:
        steps = [r for r in rows if r["phase"] == phase and int(r["rep"]) == rep]
        passed = {s: {} for s in SERVERS}
        for r in steps:
            if r["pass"] == "1":
                passed[r["server"]][int(r["rate"])] = float(r["cpu_us_per_call"])
        for s in SERVERS:
            if passed[s]:
                m = max(passed[s])
                per[s]["max"].append(m)
                per[s]["cpu_at_max"].append(passed[s][m])
            else:
                per[s]["max"].append(0)
        both = set(passed["kamailio"]) & set(passed["switchboard"])
        if both:
            c = max(both)
            common_rates.append(c)
            for s in SERVERS:
                per[s]["cpu_common"].append(passed[s][c])
        # why did the first failing step fail?
        for r in steps:
            if r["pass"] == "0":
                limits.append(
                    f"rep {rep} {r['server']} @ {r['rate']}/s: ok {r['ok']}/{r['n']}, "
                    f"failed {r['fail']}, retrans {r['retrans']}, achieved {r['achieved']}/s"
                )
    return reps, per, common_rates, limits


def main():
    out = sys.argv[1]
    steps = read_tsv(os.path.join(out, "steps.tsv"))
    mem = read_tsv(os.path.join(out, "memory.tsv"))
    lat = read_tsv(os.path.join(out, "latency.tsv"))
    env = open(os.path.join(out, "env.txt")).read() if os.path.exists(os.path.join(out, "env.txt")) else ""

    p = print
    p("# SIP benchmark: Switchboard vs Kamailio")
    p()
    p("Produced by `bench/sip/run.sh` (raw output: `bench/sip/out/" + os.path.basename(out.rstrip("/")) + "/`).")
    p()
    p("```")
    p(env.strip())
    p("```")
    p()
    if steps:
        p("## Throughput at zero failures, and CPU per call")
        p()
        p("Medians over the repetitions. *Max rate*: highest stepped rate with 0 failed calls, ≤ 1 % "
          "retransmissions and ≥ 90 % of the target rate reached. *CPU-µs/call*: server CPU "
          "(user+system, all threads/processes) per successful call, measured at the highest rate "
          "**both** servers passed in the same repetition (so both carry the same load). A digest "
          "registration is two REGISTER transactions (401, then 200); a call is INVITE+ACK+BYE.")
        p()
        p("| scenario | Kamailio max rate | Switchboard max rate | rate ratio SB/Kam | at rate | Kamailio CPU-µs/call | Switchboard CPU-µs/call | CPU ratio SB/Kam | efficiency Kam/SB |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        details = []
        for phase, title, unit in PHASES:
            reps, per, common, limits = summarize_phase(steps, phase)
            if not reps:
                continue
            km, sm = med(per["kamailio"]["max"]), med(per["switchboard"]["max"])
            kc, sc = med(per["kamailio"]["cpu_common"]), med(per["switchboard"]["cpu_common"])
            p(f"| {title} ({unit}) | {fmt(km)} | {fmt(sm)} | {ratio(sm, km)} | {fmt(med(common))} | "
              f"{fmt(kc, 1)} | {fmt(sc, 1)} | {ratio(sc, kc)} | {ratio(kc, sc)} |")
            details.append((phase, title, reps, per, common, limits))
        p()
        p("Per repetition (max rate; CPU-µs/call at the common rate; CPU-µs/call at the server's own max):")
        p()
        for phase, title, reps, per, common, limits in details:
            p(f"- **{phase}**: " + "; ".join(
                f"rep {rep}: Kam {per['kamailio']['max'][i]:.0f}/s, SB {per['switchboard']['max'][i]:.0f}/s"
                for i, rep in enumerate(reps)))
            p(f"  - CPU-µs/call at common rate {common}: Kam {per['kamailio']['cpu_common']}, "
              f"SB {per['switchboard']['cpu_common']}")
            p(f"  - CPU-µs/call at own max: Kam {per['kamailio']['cpu_at_max']}, SB {per['switchboard']['cpu_at_max']}")
            for lim in limits:
                p(f"  - first failing step: {lim}")
        p()
    if mem:
        p("## Memory per registered binding")
        p()
        p("| server | bindings | before | after | Δ ÷ bindings (bytes) | on disk | measure |")
        p("|---|---:|---:|---:|---:|---:|---|")
        for r in mem:
            if r["server"] == "switchboard":
                disk = f"db {int(r['db_bytes']) / 1e6:.1f} MB + WAL {int(r['wal_bytes']) / 1e6:.1f} MB"
                p(f"| Switchboard | {r['bindings']} | {int(r['before_kb']) / 1024:.1f} MiB | "
                  f"{int(r['after_kb']) / 1024:.1f} MiB | {r['bytes_per_binding']} | {disk} | VmRSS |")
            elif r["server"] == "kamailio":
                p(f"| Kamailio | {r['bindings']} | {int(r['before_kb']) / 1024:.1f} MiB | "
                  f"{int(r['after_kb']) / 1024:.1f} MiB | {r['bytes_per_binding']} | – (db_mode 0) | shared memory real_used (kamcmd core.shmmem) |")
            elif r["server"] == "switchboard-control-1000-aors":
                p(f"| Switchboard control: {r['bindings']} REGISTERs of only 1000 AORs | 1000 | "
                  f"{int(r['before_kb']) / 1024:.1f} MiB | {int(r['after_kb']) / 1024:.1f} MiB | | | VmRSS |")
            else:
                p(f"| Switchboard, database after clean stop | {r['bindings']} | | | | "
                  f"{int(r['db_bytes']) / 1e6:.1f} MB | file size |")
        p()
        sb = next((r for r in mem if r["server"] == "switchboard"), None)
        ctl = next((r for r in mem if r["server"] == "switchboard-control-1000-aors"), None)
        if sb and ctl:
            d_sb = int(sb["after_kb"]) - int(sb["before_kb"])
            d_ctl = int(ctl["after_kb"]) - int(ctl["before_kb"])
            n = int(sb["bindings"]) - 1000
            db = next((int(r["db_bytes"]) for r in mem if r["server"] == "switchboard-db-after-stop"), 0)
            p(f"Switchboard serves bindings from memory and writes them behind to SQLite: VmRSS grows by {d_sb / 1024:.1f} MiB "
              f"with {sb['bindings']} distinct AORs and by {d_ctl / 1024:.1f} MiB with the same REGISTER "
              f"traffic for 1000 AORs (transaction state, freed but kept by the allocator), so the bindings "
              f"themselves cost about **{(d_sb - d_ctl) * 1024 / max(n, 1):.0f} bytes of RAM each** "
              f"(the in-memory index, plus SQLite's bounded page cache), and "
              f"**{db / max(int(sb['bindings']), 1):.0f} bytes each on disk**.")
            p()
    if lat:
        p("## Latency of one proxy hop")
        p()
        p("sipp UAC → UAS direct, and through each proxy, at the same rate. sipp's response time "
          "(INVITE → 200) has 1 ms resolution; the per-hop figures come from a loopback capture "
          "(tcpdump, ns timestamps): time from the proxy receiving a message to it sending it on.")
        p()
        p("| path | sipp INVITE→200 p50 / p99 (ms) | proxy INVITE in→out p50 / p99 (µs) | proxy 200 in→out p50 / p99 (µs) | BYE in→out p50 / p99 (µs) | ACK in→out p50 / p99 (µs) |")
        p("|---|---|---|---|---|---|")
        for path in ("direct", "kamailio", "switchboard"):
            rs = [r for r in lat if r["path"] == path]
            if not rs:
                continue

            def num(x):
                try:
                    return float(x)
                except (TypeError, ValueError):
                    return None

            p50 = med([num(r["rtd_p50_ms"]) for r in rs])
            p99 = med([num(r["rtd_p99_ms"]) for r in rs])
            hops = [json.loads(r["hop_json"] or "{}") for r in rs]

            def hop(kind):
                a = med([h[kind]["p50_us"] for h in hops if kind in h])
                b = med([h[kind]["p99_us"] for h in hops if kind in h])
                return "–" if a is None else f"{a:.0f} / {b:.0f}"

            p(f"| {path} | {fmt(p50)} / {fmt(p99)} | {hop('INVITE')} | {hop('200/INVITE')} | "
              f"{hop('BYE')} | {hop('ACK')} |")
        p()
        p("Medians over the repetitions (rows in `latency.tsv`).")


if __name__ == "__main__":
    main()
