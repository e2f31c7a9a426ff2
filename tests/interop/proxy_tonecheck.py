#!/usr/bin/env python3
"""Test tones for the proxy's baresip calls: write them, and check what a UA recorded.

usage:
  proxy_tonecheck.py gen FILE HZ SECONDS [RATE [NOISE]]
      write a mono s16 WAV sine of HZ at RATE (default 8000, what baresip's aufile needs
      for PCMU), amplitude -6 dBFS, plus seeded uniform noise of NOISE x full scale
      (default 0). Speex needs the noise: a decoder that joins a stream of a pure tone
      late (a player connecting after the publisher) never gets back in step with the
      encoder's pitch predictor and its output grows into clipping; with noise at 0.03
      it re-syncs within a frame or two (measured with libspeex and ffmpeg's encoder too).
  proxy_tonecheck.py check FILE EXPECTED_HZ OTHER_HZ [MIN_WINDOWS]
      split FILE (mono s16 WAV) into 1-second windows and, in each, measure with the
      Goertzel algorithm the share of the window's energy at EXPECTED_HZ and at OTHER_HZ.
      A window "matches" when it is not silent (RMS > 0.01), at least half of its energy is
      at EXPECTED_HZ (so that frequency dominates) and less than 10 % is at OTHER_HZ.
      Passes (exit 0) when at least MIN_WINDOWS (default 3) windows exist and most (> 50 %)
      of them match; exit 1 otherwise. Prints one line per window and a verdict.
Pure Python (no numpy).
"""
import math
import random
import struct
import sys
import wave


def gen(path, hz, seconds, rate=8000, noise=0.0):
    n = int(seconds * rate)
    amp = 0.5 * 32767
    rng = random.Random(hz * 1000 + rate)
    frames = b"".join(
        struct.pack(
            "<h",
            int(round(amp * math.sin(2 * math.pi * hz * i / rate) + noise * 32767 * rng.uniform(-1, 1))),
        )
        for i in range(n)
    )
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def load(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: not 16-bit PCM")
        ch, rate, n = w.getnchannels(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    samples = struct.unpack("<%dh" % (len(raw) // 2), raw)
    if ch > 1:
        samples = [sum(samples[i:i + ch]) / ch for i in range(0, len(samples), ch)]
    return rate, [s / 32768.0 for s in samples]


def goertzel_power(x, rate, hz):
    """|X(hz)|^2 of the block x (rectangular window)."""
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def share(x, rate, hz, energy):
    """Fraction of the block's energy at hz: 1.0 for a pure tone of hz on a bin."""
    if energy <= 0:
        return 0.0
    return 2 * goertzel_power(x, rate, hz) / (len(x) * energy)


def check(path, expected, other, min_windows=3):
    rate, x = load(path)
    print(f"file={path} rate={rate} seconds={len(x) / rate:.2f}")
    hits = total = 0
    for start in range(0, len(x) - rate + 1, rate):
        seg = x[start:start + rate]
        energy = sum(v * v for v in seg)
        rms = math.sqrt(energy / len(seg))
        se = share(seg, rate, expected, energy)
        so = share(seg, rate, other, energy)
        ok = rms > 0.01 and se >= 0.5 and so < 0.1
        total += 1
        hits += ok
        print(f"  t={start // rate:3d}s rms={rms:.4f} at{expected:g}Hz={se:.2f} "
              f"at{other:g}Hz={so:.2f}{'  OK' if ok else ''}")
    good = total >= min_windows and hits * 2 > total
    print(f"expected {expected:g} Hz: {hits}/{total} one-second windows match -> "
          f"{'PASS' if good else 'FAIL'}")
    return good


def main():
    a = sys.argv[1:]
    if len(a) in (4, 5, 6) and a[0] == "gen":
        gen(a[1], float(a[2]), float(a[3]), int(a[4]) if len(a) > 4 else 8000,
            float(a[5]) if len(a) > 5 else 0.0)
    elif len(a) in (4, 5) and a[0] == "check":
        sys.exit(0 if check(a[1], float(a[2]), float(a[3]), int(a[4]) if len(a) > 4 else 3) else 1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
