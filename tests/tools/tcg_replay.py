#!/usr/bin/env python3
"""tcg_replay.py — replay TCG2 crypto-agile event logs (TCG PC Client Platform Firmware Profile)
in the order given, from all-zero PCRs, and print the PCRs asked for.

    tcg_replay.py --bank sha256 --pcrs 4,5 LOG [LOG...]     prints "PCR HEX" lines

Logs are read whole and parsed with bounds checks; a malformed log exits 2 with a message.
EV_NO_ACTION events are not extended (the specification's rule). Used by
tests/integration/qemu_launch.sh: vtpmd's log first (it extends within the firmware's
TPM2_Startup), then the firmware's.
"""
import argparse
import hashlib
import struct
import sys

EV_NO_ACTION = 3
ALGS = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512", 0x0012: "sm3"}


class Malformed(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.d, self.o = data, 0

    def take(self, n):
        if n < 0 or self.o + n > len(self.d):
            raise Malformed("truncated at offset %d (wanted %d bytes)" % (self.o, n))
        b = self.d[self.o:self.o + n]
        self.o += n
        return b

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def done(self):
        return self.o == len(self.d)


def events(data):
    """Yield (pcr, type, {alg_name: digest}) for every event after the Spec ID header."""
    r = Reader(data)
    pcr, etype = r.u32(), r.u32()
    r.take(20)
    spec = Reader(r.take(r.u32()))
    if etype != EV_NO_ACTION or spec.take(16) != b"Spec ID Event03\0":
        raise Malformed("no Spec ID Event03 header: not a crypto-agile log")
    spec.take(4 + 4)  # platformClass, versions, errata, uintnSize
    sizes = {}
    for _ in range(spec.u32()):
        alg, size = spec.u16(), spec.u16()
        sizes[alg] = size
    while not r.done():
        pcr, etype, count = r.u32(), r.u32(), r.u32()
        digests = {}
        for _ in range(count):
            alg = r.u16()
            if alg not in sizes:
                raise Malformed("digest of algorithm 0x%04x not in the header" % alg)
            digests[ALGS.get(alg, "0x%04x" % alg)] = r.take(sizes[alg])
        r.take(r.u32())  # the event data
        yield pcr, etype, digests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", default="sha256")
    ap.add_argument("--pcrs", default="4,5")
    ap.add_argument("logs", nargs="+")
    a = ap.parse_args()
    want = [int(p) for p in a.pcrs.split(",")]
    size = hashlib.new(a.bank).digest_size
    pcrs = {p: bytes(size) for p in range(24)}
    try:
        for path in a.logs:
            with open(path, "rb") as f:
                for pcr, etype, digests in events(f.read()):
                    if etype == EV_NO_ACTION or pcr not in pcrs:
                        continue
                    if a.bank not in digests:
                        raise Malformed("%s: an event of PCR %d has no %s digest" % (path, pcr, a.bank))
                    pcrs[pcr] = hashlib.new(a.bank, pcrs[pcr] + digests[a.bank]).digest()
    except (Malformed, OSError) as e:
        print("tcg_replay: %s" % e, file=sys.stderr)
        return 2
    for p in want:
        print(p, pcrs[p].hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
