#!/usr/bin/env python3
"""Is a recorded call's audio a tone of the expected frequency?

usage: tone.py FILE EXPECTED_HZ [MIN_WINDOWS]

Splits FILE (a 16-bit PCM WAV, mono or stereo, any rate) into 1-second windows. In each one
it finds the dominant frequency (Goertzel scan, 10 Hz steps from 50 Hz to 4 kHz, refined to
1 Hz around the peak) and the share of the window's energy at EXPECTED_HZ. A window matches
when it is not silent (RMS > 0.01), its dominant frequency is within 15 Hz of EXPECTED_HZ and
at least half of its energy is there. Passes (exit 0) when at least MIN_WINDOWS (default 3)
windows match and they are most (> 50 %) of the windows. Prints one line per window and a
verdict line: "PASS|FAIL expected=HZ matched=M/N dominant=HZ,HZ,...".
Pure Python (no numpy).
"""
import math
import struct
import sys
import wave


def load(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: not 16-bit PCM")
        ch, rate, n = w.getnchannels(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    s = struct.unpack("<%dh" % (len(raw) // 2), raw)
    if ch > 1:
        s = [sum(s[i:i + ch]) / ch for i in range(0, len(s), ch)]
    return rate, [v / 32768.0 for v in s]


def power(x, rate, hz):
    """|X(hz)|^2 of block x (Goertzel, rectangular window)."""
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def dominant(x, rate):
    top = min(4000, rate / 2 - 50)
    coarse = max(range(50, int(top), 10), key=lambda f: power(x, rate, f))
    return max(range(max(20, coarse - 10), coarse + 11), key=lambda f: power(x, rate, f))


def main():
    a = sys.argv[1:]
    if len(a) not in (2, 3):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    path, expected = a[0], float(a[1])
    min_windows = int(a[2]) if len(a) > 2 else 3
    rate, x = load(path)
    # Decimate high-rate recordings (48 kHz Opus) for speed: every k-th sample keeps
    # everything below 4 kHz apart from aliases, which cannot make a clean tone dominant.
    k = max(1, rate // 8000)
    x, rate = x[::k], rate // k
    print(f"file={path} rate={rate * k} seconds={len(x) / rate:.2f}")
    matched = total = 0
    doms = []
    for start in range(0, len(x) - rate + 1, rate):
        seg = x[start:start + rate]
        energy = sum(v * v for v in seg)
        rms = math.sqrt(energy / len(seg))
        total += 1
        if rms <= 0.01:
            doms.append("silent")
            print(f"  t={start // rate:3d}s rms={rms:.4f} silent")
            continue
        dom = dominant(seg, rate)
        share = 2 * power(seg, rate, expected) / (len(seg) * energy)
        ok = abs(dom - expected) <= 15 and share >= 0.5
        matched += ok
        doms.append(str(dom))
        print(f"  t={start // rate:3d}s rms={rms:.4f} dominant={dom}Hz share@{expected:g}={share:.2f}"
              f"{'  OK' if ok else ''}")
    good = matched >= min_windows and matched * 2 > total
    print(f"{'PASS' if good else 'FAIL'} expected={expected:g} matched={matched}/{total} "
          f"dominant={','.join(doms) or 'none'}")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
