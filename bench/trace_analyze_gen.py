#!/usr/bin/env python3
"""Make a big Chrome trace by repeating a real one, for bench/trace_analyze.sh.

Copy k (0..K-1) of the source's traceEvents has every `ts` shifted by k x (the source's span +
a 1 ms gap) and its ids offset by k x (the largest id + 1): `External id`, `correlation`, the
flow events' `id`, `Python id` / `Python parent id`, so every join stays one-to-one within its
copy. Metadata (`ph == "M"`) events and the top-level keys other than traceEvents are written
once. K is the smallest count that makes the file at least TARGET bytes. The output is written
event by event (never built in memory) to OUT.tmp, then renamed.

The result is cached: OUT.stamp records the source's and this script's sha256, K and the
output's size and sha256; when they all still match, the file is reused.

Usage: trace_analyze_gen.py SOURCE OUT [TARGET_BYTES]   (default 1,000,000,000)
Prints OUT's path.
"""

import gzip
import hashlib
import json
import math
import os
import sys

GAP_US = 1000.0
ID_ARGS = ("External id", "correlation", "Python id", "Python parent id")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load(path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        doc = json.load(f)
    return doc if isinstance(doc, dict) else {"traceEvents": doc}


def dumps(e):
    return json.dumps(e, separators=(",", ":"), ensure_ascii=False)


def shifted(e, k, dt, did):
    if k == 0:
        return e
    e = dict(e)
    if isinstance(e.get("ts"), (int, float)):
        e["ts"] = round(e["ts"] + k * dt, 3)
    if e.get("ph") in ("s", "f", "t") and isinstance(e.get("id"), int):
        e["id"] = e["id"] + k * did
    args = e.get("args")
    if isinstance(args, dict) and any(a in args for a in ID_ARGS):
        args = dict(args)
        for a in ID_ARGS:
            if isinstance(args.get(a), int) and args[a] >= 0:
                args[a] = args[a] + k * did
        e["args"] = args
    return e


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: trace_analyze_gen.py SOURCE OUT [TARGET_BYTES]")
    src, out = sys.argv[1], sys.argv[2]
    target = int(sys.argv[3]) if len(sys.argv) == 4 else 1_000_000_000
    stamp_path = out + ".stamp"
    want = {"source_sha256": sha256(src), "generator_sha256": sha256(__file__),
            "target_bytes": target}
    if os.path.exists(out) and os.path.exists(stamp_path):
        with open(stamp_path) as f:
            stamp = json.load(f)
        if (all(stamp.get(k) == v for k, v in want.items())
                and os.path.getsize(out) == stamp.get("bytes")
                and sha256(out) == stamp.get("sha256")):
            print(out)
            return

    doc = load(src)
    events = doc["traceEvents"]
    meta = [e for e in events if e.get("ph") == "M"]
    body = [e for e in events if e.get("ph") != "M"]
    timed = [e for e in body if isinstance(e.get("ts"), (int, float))]
    start = min(e["ts"] for e in timed)
    end = max(e["ts"] + (e.get("dur") or 0) for e in timed)
    dt = end - start + GAP_US
    ids = [e["id"] for e in body if e.get("ph") in ("s", "f", "t") and isinstance(e.get("id"), int)]
    for e in body:
        args = e.get("args")
        if isinstance(args, dict):
            ids += [args[a] for a in ID_ARGS if isinstance(args.get(a), int)]
    did = max(ids, default=0) + 1

    head = "{" + "".join(f"{json.dumps(k)}:{dumps(v)}," for k, v in doc.items()
                         if k != "traceEvents") + '"traceEvents":[\n'
    meta_text = "".join(dumps(e) + ",\n" for e in meta)
    copy_bytes = sum(len(dumps(e).encode()) + 2 for e in body)
    k_copies = max(1, math.ceil((target - len(head.encode()) - len(meta_text.encode())) / copy_bytes))

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    h = hashlib.sha256()
    size = 0
    with open(tmp, "w", encoding="utf-8") as f:

        def put(s):
            nonlocal size
            b = s.encode()
            h.update(b)
            size += len(b)
            f.write(s)

        put(head)
        put(meta_text)
        first = True
        for k in range(k_copies):
            chunk = []
            for e in body:
                chunk.append(("" if first else ",\n") + dumps(shifted(e, k, dt, did)))
                first = False
            put("".join(chunk))
        put("\n]}\n")
    os.replace(tmp, out)
    stamp = dict(want, copies=k_copies, events=len(meta) + k_copies * len(body), bytes=size,
                 sha256=h.hexdigest(), span_us=dt - GAP_US, id_stride=did)
    with open(stamp_path, "w") as f:
        json.dump(stamp, f, indent=1)
    print(out)


if __name__ == "__main__":
    main()
