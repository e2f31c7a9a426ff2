#!/usr/bin/env python3
"""Regenerates the G.722 reference vector used by g722.rs's bit-exactness test.

Needs the public-domain reference codec packaged for Python: `pip install G722==1.2.8`.
Writes g722_ref.enc (its 64 kbit/s encoding of the input below) and g722_ref.dec (its
decoding of that encoding, s16le) next to this file. The input must match `vector_input()`
in g722.rs exactly: integer arithmetic only.
"""
import array
import os

import G722


def vector_input():
    seed = 12345
    out = []
    for n in range(8000):
        seed = (seed * 1103515245 + 12345) & 0xFFFFFFFF
        noise = ((seed >> 16) & 0x1FFF) - 4096
        ph = n % 40
        tri = ph * 600 - 6000 if ph < 20 else (40 - ph) * 600 - 6000
        burst = 0
        if 3000 <= n < 4000:
            burst = 20000 if (n // 9) % 2 == 0 else -20000
        out.append(max(-32768, min(32767, tri + noise + burst)))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    pcm = array.array("h", vector_input())
    enc = G722.G722(16000, 64000).encode(pcm)
    dec = G722.G722(16000, 64000).decode(enc)
    with open(os.path.join(here, "g722_ref.enc"), "wb") as f:
        f.write(bytes(enc))
    with open(os.path.join(here, "g722_ref.dec"), "wb") as f:
        f.write(array.array("h", dec).tobytes())  # little-endian on x86_64
    print(len(enc), "bytes,", len(dec), "samples")


if __name__ == "__main__":
    main()
