#!/usr/bin/env python3
"""The Python reference of docs/schedule.md, run as printed there, gives the
doc's own test vectors (1 to 6), which tests/unit/test_schedule.c and
test_client_schedule.c check against the C code: so the reference a client
author copies is the agent's computation. usage: schedule_reference.py ROOT"""
import itertools
import sys

doc = open(sys.argv[1] + "/docs/schedule.md", encoding="utf-8").read()
start = doc.index("```python\n") + len("```python\n")
ns = {}
exec(doc[start:doc.index("```", start)], ns)

failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: reference gives {got}, the doc's vector says {want}")


key = bytes(range(32))
e, port, grace, decoys = ns["compute"](key, "web", 1700000045, 60, 15, 20000, 29999, 8)
check("vector 1 epoch/port/grace", (e, port, grace), (28333334, 24847, 24121))
check("vector 1 decoys", decoys, [20346, 25882, 23472, 29712, 28457, 23359, 23920, 27441])
check("vector 1 past grace", ns["compute"](key, "web", 1700000070, 60, 15, 20000, 29999, 8)[2], None)
e, port, grace, decoys = ns["compute"](b"mtd-test-key", "ssh", 1234567890, 1, 0, 40000, 40009, 3)
check("vector 2", (port, grace, decoys), (40003, None, [40007]))
kdb = bytes.fromhex("00112233445566778899aabbccddeeff")
e, port, grace, decoys = ns["compute"](kdb, "db", 1700000000, 300, 30, 1024, 65535, 4, {53331})
check("vector 3", (e, port, grace, decoys), (5666666, 58742, None, [40303, 31032, 45269, 52008]))

E = 28333334
for client, host, doors, knocks in [
    ("alice", "203.0.113.5", (21195, 24574, 21530), (28082, 20816, 22952)),
    ("alice", "198.51.100.7", (27906, 23447, 26527), (26471, 27944, 20651)),
    ("bob", "203.0.113.5", (23660, 23844, 21430), (25240, 24938, 25207)),
]:
    got = tuple(ns["door"](key, "web", client, host, E + d, 20000, 29999) for d in (-1, 0, 1))
    check(f"vector 4 doors {client}@{host}", got, doors)
    got = tuple(ns["knock_port"](key, "web", client, host, E + d, 20000, 29999) for d in (-1, 0, 1))
    check(f"vector 4 knock ports {client}@{host}", got, knocks)
base = ns["client_base"]("mtd-client-port-v1", "ssh", "ops-1", "host-a", 1234567890)
check("vector 5 candidates", list(ns["stream"](b"mtd-test-key", base, 40000, 40009)),
      [40008, 40009, 40004, 40006, 40002, 40007, 40000, 40003, 40001, 40005])
check("vector 5 door", ns["door"](b"mtd-test-key", "ssh", "ops-1", "host-a", 1234567890, 40000, 40009,
                                  {40008, 40009}), 40004)
nonce = bytes(range(0x10, 0x20))
check("vector 6 admit 0", ns["knock_packet"](key, "web", "203.0.113.5", "alice", 1700000045, nonce).hex(),
      "4d54444b0105616c696365000000006553f12d101112131415161718191a1b1c1d1e1f00"
      "86e1300b62e5d2afd1e31cfbc14a92e53d7accda1f7d14f9e4ab516854935548")
check("vector 6 admit 4",
      ns["knock_packet"](key, "web", "203.0.113.5", "alice", 1700000045, nonce, 4, bytes([192, 0, 2, 10])).hex(),
      "4d54444b0105616c696365000000006553f12d101112131415161718191a1b1c1d1e1f04c000020a"
      "8ebb2e52d191923a03157f3afe23cac4f178ee25c0c826bdc8881e3b86c187df")
# every hex line of the doc's vector 6 is the packet the reference builds
sect = doc[doc.index("### 6 — knock packets"):doc.index("## Reference implementation")]
hexes = [l.strip() for l in sect.splitlines() if l.strip() and all(c in "0123456789abcdef" for c in l.strip())]
check("vector 6 as printed", "".join(hexes[:2]) + "".join(hexes[2:4]),
      ns["knock_packet"](key, "web", "203.0.113.5", "alice", 1700000045, nonce).hex()
      + ns["knock_packet"](key, "web", "203.0.113.5", "alice", 1700000045, nonce, 4, bytes([192, 0, 2, 10])).hex())

for f in failures:
    print("FAIL [schedule_reference]:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
