#!/usr/bin/env python3
"""Builds a seed corpus for fuzz_protocol from the captured sessions in tests/unit/protocol/data.

Usage: make_seeds.py OUT_DIR
Each seed is: mode byte, seed byte, payload (see fuzz_protocol.cc).
All of them (about 700, 3 MB): for long local runs. The checked-in corpus that scripts/fuzz.sh
and CI start from is a small subset, made by make_corpus.py (which uses the helpers here).
"""
import os
import struct
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "protocol", "data")


def startup_len(fe):
    """Bytes of untyped startup packets at the start of a frontend capture, and how many of
    them were SSL/GSS requests (each answered with one byte)."""
    pos = requests = 0
    while len(fe) - pos >= 8:
        (length, code) = struct.unpack("!ii", fe[pos:pos + 8])
        pos += length
        if code not in (80877103, 80877104):  # SSLRequest, GSSENCRequest
            break
        requests += 1
    return pos, requests


def messages(stream):
    pos = 0
    while len(stream) - pos >= 5:
        (length,) = struct.unpack("!i", stream[pos + 1:pos + 5])
        if length < 4 or pos + 1 + length > len(stream):
            break
        yield stream[pos + 5:pos + 1 + length]
        pos += 1 + length


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0

    def seed(mode, byte, payload):
        nonlocal n
        with open(os.path.join(out, f"seed_{n:05d}"), "wb") as f:
            f.write(bytes([mode, byte]) + payload)
        n += 1

    for name in sorted(os.listdir(DATA)):
        if not name.endswith(".fe.bin"):
            continue
        base = name[:-len(".fe.bin")]
        fe = open(os.path.join(DATA, name), "rb").read()
        be = open(os.path.join(DATA, base + ".be.bin"), "rb").read()
        skip, answers = startup_len(fe)
        seed(2, 0, fe[:max(skip, 8)])
        if base.startswith("probe_"):
            seed(0, 3, fe[skip:])
            continue
        for byte in (0, 0x21, 0x0f):
            seed(0, byte, fe[skip:])
            seed(1, byte, be[answers:])
        for body in list(messages(fe[skip:]))[:40] + list(messages(be[answers:]))[:40]:
            seed(3, 0, body)
    print(f"{n} seeds in {out}")


if __name__ == "__main__":
    main()
