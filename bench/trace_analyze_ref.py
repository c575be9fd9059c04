#!/usr/bin/env python3
"""A small Python reference of `forge trace analyze`'s kernel table, for bench/trace_analyze.sh.

It does what the campaign seed's scripts do: `json.load` the whole trace (plain or gzip,
`{"traceEvents": [...]}` or a bare array), then the contract's analysis
(../shared/notes/sota-loop.md, "Trace analysis"), written to follow src/trace/ rule for rule:

- kernels: `ph == "X"`, `dur > 0`, category containing `kernel` or starting with `gpu_`, not
  annotations, python_function or cpu_op; the process with the most kernel time;
- canonical names: whitespace collapsed, `0x…` -> `0xADDR`, a `void f(...)`'s argument list
  dropped; categories by the first-match substring rules;
- Python location: the innermost user `python_function` frame on the launching thread at the
  launching cpu_op's start (kernel -> cpu_op on `External id`, else kernel -> runtime launch
  on `correlation`), with its share of the kernel's GPU time; CPU op: the launching cpu_op
  with the most of its time.

It prints the same Markdown as `forge trace analyze TRACE`. Stdlib only.

Usage: trace_analyze_ref.py TRACE
"""

import bisect
import gzip
import json
import sys

# Categories in the contract's order; the first whose keywords match wins (src/trace/kernels.rs).
RULES = [
    ("communication", ["nccl", "allreduce", "all_reduce", "reduce_scatter", "allgather",
                       "all_gather", "alltoall", "cross_device_reduce", "deepep"]),
    # KV-cache writes are memory (forge's addition: their template arguments would say fp8).
    ("memory", ["memcpy", "memset", "reshape_and_cache", "store_kvcache", "set_kv_buffer"]),
    ("hybrid_linear", ["mamba", "ssm", "gated_delta", "causal_conv"]),
    ("attention", ["flash_attn", "fmha", "attention", "mla", "paged_attention", "flash_fwd",
                   "batchprefill", "batchdecode"]),
    ("moe", ["fused_moe", "grouped_mm", "moe", "expert"]),
    ("gemm", ["gemm", "gemv", "matmul", "cublas", "cutlass", "wgmma", "mma", "bmm", "nvjet",
              "cijk_"]),
    ("norm", ["rmsnorm", "rms_norm", "layernorm", "layer_norm"]),
    ("rope", ["rotary", "rope"]),
    ("softmax", ["softmax"]),
    ("activation", ["silu", "gelu", "act_and_mul"]),
    ("quantize", ["quant", "fp8", "mxfp", "nvfp4", "dequant"]),
    ("reduce_topk", ["topk", "argmax", "sampling"]),
    ("elementwise", ["elementwise"]),
]
COMPUTES = ["gemm", "matmul", "attention", "moe", "norm", "quant", "bmm"]
RUNTIME = {"cuda_runtime", "cuda_driver", "hip_runtime", "hip_driver"}
HEX = set("0123456789abcdefABCDEF")


def category(name):
    n = name.lower()
    for cat, words in RULES:
        if any(w in n for w in words):
            return cat
        # Copies and fills are memory unless the name says they compute.
        if cat == "memory" and ("copy" in n or "fill" in n) and not any(w in n for w in COMPUTES):
            return "memory"
    return "other"


def is_kernel(e):
    cat = str_field(e, "cat").lower()
    return (str_field(e, "ph") == "X" and num(e.get("dur")) > 0
            and ("kernel" in cat or cat.startswith("gpu_"))
            and "annotation" not in cat and cat != "python_function" and cat != "cpu_op")


def hex_to_addr(s):
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i] == "0" and i + 2 < n and s[i + 1] in "xX" and s[i + 2] in HEX:
            out.append("0xADDR")
            i += 2
            while i < n and s[i] in HEX:
                i += 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def trailing_args(s):
    """Where the argument list at the end of `s` starts, if `s` ends in one."""
    if not s.endswith(")"):
        return None
    depth = 0
    for i in range(len(s) - 1, -1, -1):
        c = s[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                return i if i > 0 else None
    return None


def canonical(name):
    s = hex_to_addr(" ".join(name.split()))
    if s.startswith("void "):
        cut = trailing_args(s)
        if cut is not None:
            s = s[:cut]
    return s


def short(c):
    """The function's own name: no return type, namespaces, template or argument list."""
    if "::" not in c and "<" not in c:
        return c
    s = c
    cut = trailing_args(s)
    if cut is not None:
        s = s[:cut]
    paren = angle = start = 0
    for i, ch in enumerate(s):
        if ch in "([":
            paren += 1
        elif ch in ")]":
            paren -= 1
        elif ch == "<" and paren == 0:
            angle += 1
        elif ch == ">" and paren == 0:
            angle -= 1
        elif ch == " " and paren == 0 and angle == 0:
            start = i + 1
    tail = s[start:]
    paren, end = 0, len(tail)
    for i, ch in enumerate(tail):
        if ch == "(":
            paren += 1
        elif ch == ")":
            paren -= 1
        elif ch == "<" and paren == 0:
            end = i
            break
    base = tail[:end]
    out = base.rsplit("::", 1)[-1].strip()
    return out or c


def is_user(frame):
    if frame.startswith("<") or frame.startswith("nn.Module:"):
        return False
    path = frame.split("(", 1)[0]
    return not (path.startswith("torch/") or "/torch/" in path or path.startswith("threading.py")
                or path.startswith("contextlib.py") or path.startswith("runpy.py"))


def location(frame):
    """`path(line): function` -> `path:line function`."""
    if "(" in frame:
        path, rest = frame.split("(", 1)
        if "): " in rest:
            line, func = rest.split("): ", 1)
            if all(c in "0123456789" for c in line):
                return f"{path}:{line} {func}"
    return frame


def ident(v):
    """A pid/tid as forge keys it: strings as they are, numbers as JSON writes them."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v)


def str_field(e, k):
    v = e.get(k)
    return v if isinstance(v, str) else ""


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def int_arg(args, k):
    v = args.get(k) if isinstance(args, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def time(us):
    return f"{us / 1000:.2f} ms" if us >= 10.0 else f"{us:.1f} µs"


def clip(name, n=96):
    if len(name) <= n:
        return name
    head = n * 3 // 5
    tail = n - head - 1
    return name[:head] + "…" + name[len(name) - tail:]


def analyze(path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        doc = json.load(f)  # the whole trace, as the seed's scripts read it
    events = doc["traceEvents"] if isinstance(doc, dict) else doc

    by_pid = {}  # pid -> canonical -> [us, launches]
    frames = {}  # "pid/tid" -> [(start, end, name)]
    ops = {}  # External id -> (thread, ts, cpu_op name)
    launches = {}  # correlation -> (thread, ts, None)
    kernels = []  # (pid, canonical, dur, External id, correlation)
    first = {}  # frame / cpu_op name -> when first seen (ties go to the earlier, as in forge)
    for e in events:
        if str_field(e, "ph") != "X":
            continue
        cat = str_field(e, "cat")
        args = e.get("args") or {}
        if cat == "python_function":
            t = f"{ident(e.get('pid'))}/{ident(e.get('tid'))}"
            ts = num(e.get("ts"))
            frames.setdefault(t, []).append((ts, ts + num(e.get("dur")), str_field(e, "name")))
            first.setdefault(str_field(e, "name"), len(first))
        elif cat == "cpu_op":
            x = int_arg(args, "External id")
            if x is not None:
                t = f"{ident(e.get('pid'))}/{ident(e.get('tid'))}"
                ops[x] = (t, num(e.get("ts")), str_field(e, "name"))
                first.setdefault(str_field(e, "name"), len(first))
        elif cat in RUNTIME:
            c = int_arg(args, "correlation")
            if c is not None:
                t = f"{ident(e.get('pid'))}/{ident(e.get('tid'))}"
                launches[c] = (t, num(e.get("ts")), None)
        if is_kernel(e):
            pid = ident(e.get("pid"))
            name = canonical(str_field(e, "name"))
            dur = num(e.get("dur"))
            slot = by_pid.setdefault(pid, {}).setdefault(name, [0.0, 0])
            slot[0] += dur
            slot[1] += 1
            kernels.append((pid, name, dur, int_arg(args, "External id"),
                            int_arg(args, "correlation")))
    if not by_pid:
        sys.exit(f"{path}: no GPU kernel among its {len(events)} events")

    # The process with the most kernel time (ties: the smaller pid).
    totals = {p: sum(v[0] for v in ks.values()) for p, ks in by_pid.items()}
    pid = min(totals, key=lambda p: (-totals[p], p))
    ks = by_pid[pid]
    total = totals[pid]
    rows = sorted(ks.items(), key=lambda kv: (-kv[1][0], kv[0]))

    # Sites: per kernel name, GPU time by innermost user frame and by cpu_op.
    for fs in frames.values():
        fs.sort(key=lambda f: f[0])
    starts = {t: [f[0] for f in fs] for t, fs in frames.items()}
    spread = {}  # name -> [by frame, by op, total]
    for kpid, name, dur, ext, corr in kernels:
        if kpid != pid:
            continue
        launch = ops.get(ext) if ext is not None else None
        if launch is None and corr is not None:
            launch = launches.get(corr)
        slot = spread.setdefault(name, [{}, {}, 0.0])
        slot[2] += dur
        if launch is None:
            continue
        thread, ts, op = launch
        frame = None
        fs = frames.get(thread)
        if fs:
            upto = bisect.bisect_right(starts[thread], ts)
            for i in range(upto - 1, max(upto - 4096, 0) - 1, -1):
                start, end, fname = fs[i]
                if end >= ts and is_user(fname):
                    frame = fname
                    break
        slot[0][frame] = slot[0].get(frame, 0.0) + dur
        if op is not None:
            slot[1][op] = slot[1].get(op, 0.0) + dur

    out = [f"# Trace analysis\n\n`{path}`: {len(events)} events; process {pid}, "
           f"{time(sum(v[0] for _, v in rows))} of GPU kernel time.\n\n## Kernels\n\n",
           "| Kernel | Category | GPU time | Share | Launches | Python location (site share) | CPU op |\n",
           "| --- | --- | ---: | ---: | ---: | --- | --- |\n"]
    hidden = []
    # Names that clip alike are shown whole (forge's distinct_clips).
    shown = [clip(short(nm)) for nm, (u, _) in rows if total > 0 and u / total >= 0.01]
    for name, (us, n) in rows:
        share = us / total if total > 0 else 0.0
        if share < 0.01:
            hidden.append(us)
            continue
        site, op = "", ""
        if name in spread:
            by_frame, by_op, ktotal = spread[name]
            user = [(f, t) for f, t in by_frame.items() if f is not None]
            if user:
                f, t = max(user, key=lambda ft: (ft[1], -first[ft[0]]))
                site = f"{location(f)} ({(t / ktotal if ktotal > 0 else 0.0) * 100:.0f}%)"
            if by_op:
                op = max(by_op.items(), key=lambda ot: (ot[1], -first[ot[0]]))[0]
        out.append("| {} | {} | {} | {:.1f}% | {} | {} | {} |\n".format(
            (short(name) if shown.count(clip(short(name))) > 1 else clip(short(name))).replace("|", "\\|"),
            category(name), time(us), share * 100, n,
            site.replace("|", "\\|"), op.replace("|", "\\|")))
    if hidden:
        out.append(f"\n{len(hidden)} kernels under 1 % of GPU time each are not listed "
                   f"({time(sum(hidden))} together).\n")
    return "".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: trace_analyze_ref.py TRACE")
    sys.stdout.write(analyze(sys.argv[1]))
