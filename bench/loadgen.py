#!/usr/bin/env python3
"""Measure `forge bench` as a load generator, beside `vllm bench serve`, on loopback.

Driven by bench/loadgen.sh (which builds forge and finds the peer clients). Starts
`forge loopback-server` pinned to one core and each client pinned to the other, runs three
scenarios against it and prints markdown tables:

  throughput  zero-latency streams, 1,000 concurrent: requests/s, SSE chunks/s, CPU s
  overhead    ~1,000 concurrent paced streams (Poisson arrivals): the client's added TTFT,
              i.e. client-measured TTFT minus the server's own receive->first-chunk time
              (the server writes it into the first chunk as `[emit_us=N]`)
  agreement   TTFT/ITL delays on the server, moderate load: do both tools read the same?

Standard library only. Processes it starts are stopped by pid when done.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMIT = re.compile(r"\[emit_us=(\d+)\]")
VLLM_MARK = "Starting main benchmark run"


def pct(values, p):
    """numpy-style linear-interpolated percentile."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def pin(cpu, nice):
    """preexec_fn: pin to one core and raise priority (when permitted)."""

    def f():
        os.setsid()
        os.sched_setaffinity(0, {cpu})
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except PermissionError:
                pass

    return f


class Server:
    """`forge loopback-server` on its own core."""

    def __init__(self, forge, cpu, nice, ttft_ms, itl_ms):
        cmd = [forge, "loopback-server", "--port", "0",
               "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=pin(cpu, nice))
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.stop()
            sys.exit(f"loopback server did not start: {line!r}")
        self.url = f"http://{m.group(1)}"

    def stats(self):
        import urllib.request
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as r:
            return json.load(r)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def proc_cpu(pid):
    """utime + stime of a live process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(cmd, cpu, nice, mark=None, env=None):
    """Run a client to completion; CPU seconds from `mark` (a stdout line) on, or total."""
    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=pin(cpu, nice), env=e)
    at_mark, out = 0.0, []
    for line in p.stdout:
        out.append(line)
        if mark and mark in line:
            at_mark = proc_cpu(p.pid)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.stderr.write("".join(out[-40:]))
        sys.exit(f"client failed ({p.returncode}): {' '.join(cmd)}")
    return ru.ru_utime + ru.ru_stime - at_mark


def workload(path, n, out_tokens):
    """One file both tools read: forge's `expected_output_tokens`, vLLM's `output_tokens`."""
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"request {i}: tell me a short story about tokens",
                                "expected_output_tokens": out_tokens,
                                "output_tokens": out_tokens}) + "\n")


def forge_cmd(a, url, wl, out, conc, rate):
    cmd = [a.forge, "bench", "--base-url", url, "--workload", wl, "--model", "loopback",
           "--request-rate", rate, "--save-detailed", "--metric-percentiles", "50,90,99",
           "--output", out, "--no-progress"]
    if conc:
        cmd += ["--concurrency", str(conc)]
    return cmd


def vllm_cmd(a, url, wl, n, out, conc, rate):
    d, f = os.path.split(out)
    cmd = [a.vllm, "bench", "serve", "--backend", "openai", "--base-url", url,
           "--model", "loopback", "--tokenizer", a.tokenizer, "--dataset-name", "custom",
           "--dataset-path", wl, "--custom-output-len", "-1", "--skip-chat-template",
           "--disable-shuffle", "--num-prompts", str(n), "--request-rate", rate,
           "--ignore-eos", "--temperature", "0", "--save-result", "--save-detailed",
           "--result-dir", d, "--result-filename", f, "--disable-tqdm",
           "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99"]
    if conc:
        cmd += ["--max-concurrency", str(conc)]
    return cmd


def summarize(result_path, cpu_s):
    """The figures the tables need, computed the same way for both tools."""
    r = json.loads(Path(result_path).read_text())
    errors = r.get("errors") or [""] * len(r["ttfts"])
    ok = [i for i, e in enumerate(errors) if not e]
    chunks = sum(len(r["itls"][i]) + 1 for i in ok)
    added, emit = [], []
    for i in ok:
        m = EMIT.search(r["generated_texts"][i] or "")
        if m:
            emit.append(int(m.group(1)) / 1e3)
            added.append(r["ttfts"][i] * 1e3 - emit[-1])
    dur = r["duration"]
    return {
        "completed": r["completed"], "failed": r["failed"], "duration": dur,
        "req_s": r["completed"] / dur, "chunks_s": chunks / dur, "cpu_s": cpu_s,
        "added_p50": pct(added, 50), "added_p99": pct(added, 99),
        "emit": emit,
        "r": r,
    }


def run_pair(a, name, server_args, n, out_tokens, conc, rate, tmp, repeats=1):
    """Both tools, alternating, each run against a fresh server; `repeats` runs each."""
    wl = os.path.join(tmp, f"{name}.jsonl")
    workload(wl, n, out_tokens)
    res = {}
    clients = [("forge", None)] + ([("vllm", VLLM_MARK)] if a.vllm else [])
    for k in range(repeats):
        for tool, mark in clients:
            s = run_one(a, tool, mark, server_args, wl, n, conc, rate,
                        os.path.join(tmp, f"{name}-{tool}-{k}.json"))
            res.setdefault(tool, []).append(s)
            print(f"  {name}/{tool}#{k}: {s['completed']} ok, {s['req_s']:.0f} req/s, "
                  f"{s['chunks_s']:.0f} chunks/s, {s['cpu_s']:.2f} CPU s, "
                  f"added TTFT p99 {s['added_p99']:.3f} ms", file=sys.stderr)
    return res


def psi_cpu_us():
    """Cumulative µs during which some task on the machine waited for a CPU (PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(line.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def run_one(a, tool, mark, server_args, wl, n, conc, rate, out):
    srv = Server(a.forge, a.server_cpu, a.nice, *server_args)
    try:
        cmd = (forge_cmd(a, srv.url, wl, out, conc, rate) if tool == "forge"
               else vllm_cmd(a, srv.url, wl, n, out, conc, rate))
        p0, t0 = psi_cpu_us(), time.monotonic()
        cpu = run_client(cmd, a.client_cpu, a.nice, mark)
        p1, t1 = psi_cpu_us(), time.monotonic()
        s = summarize(out, cpu)
        s["psi"] = None if p0 is None or p1 is None else (p1 - p0) / 1e4 / (t1 - t0)
        s["server_max_in_flight"] = srv.stats()["max_in_flight"]
        return s
    finally:
        srv.stop()


JITTER = """
import time
lat = []
end = time.monotonic() + %f
while time.monotonic() < end:
    t = time.monotonic(); time.sleep(0.001); lat.append(time.monotonic() - t - 0.001)
lat.sort()
print(lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3)
"""


def jitter(a, secs):
    """Wake-up lateness of an idle 1 ms sleeper on the client core: the machine's floor."""
    out = subprocess.run([sys.executable, "-c", JITTER % secs], capture_output=True,
                         text=True, preexec_fn=pin(a.client_cpu, a.nice), check=True)
    return [float(x) for x in out.stdout.split()]


def fmt(v, d=2):
    return "-" if v is None or v != v else f"{v:,.{d}f}"


def med(runs, key):
    return pct([r[key] for r in runs], 50)


def spread(runs, key, d):
    """Median over repeats, with the range when there were several."""
    v = [r[key] for r in runs]
    if len(v) == 1:
        return fmt(v[0], d)
    return f"{fmt(pct(v, 50), d)} ({fmt(min(v), d)}–{fmt(max(v), d)})"


def perf_table(title, res):
    tools = list(res)
    rows = [
        ("requests completed / failed",
         lambda r: f"{sum(x['completed'] for x in r)} / {sum(x['failed'] for x in r)}"),
        ("achieved request rate (req/s)", lambda r: spread(r, "req_s", 0)),
        ("SSE chunks/s", lambda r: spread(r, "chunks_s", 0)),
        ("client CPU s (measured phase)", lambda r: spread(r, "cpu_s", 2)),
        ("client CPU µs per chunk",
         lambda r: fmt(pct([1e6 * x["cpu_s"] / max(1, x["chunks_s"] * x["duration"])
                            for x in r], 50), 1)),
        ("max streams in flight (server-side)",
         lambda r: str(max(x["server_max_in_flight"] for x in r))),
        ("added TTFT p50 (ms)", lambda r: spread(r, "added_p50", 3)),
        ("added TTFT p99 (ms)", lambda r: spread(r, "added_p99", 3)),
        ("machine CPU pressure during the run (PSI some, %)",
         lambda r: "-" if None in [x["psi"] for x in r] else spread(r, "psi", 0)),
    ]
    out = [f"### {title}", "", "| | " + " | ".join(tools) + " |",
           "|---|" + "---:|" * len(tools)]
    for label, f in rows:
        out.append(f"| {label} | " + " | ".join(f(res[t]) for t in tools) + " |")
    return "\n".join(out)


def agreement_table(res, truth):
    keys = [(f"{stat}_{m}_ms", f"{stat} {m.upper()} (ms)")
            for m in ("ttft", "tpot", "itl", "e2el") for stat in ("mean", "median", "p99")]
    keys += [("request_throughput", "request throughput (req/s)"),
             ("output_throughput", "output throughput (tok/s)")]
    tools = list(res)
    head = "| metric | server side | " + " | ".join(tools)
    head += " | forge − vllm |" if len(tools) == 2 else " |"
    out = ["### Metric agreement", "", head,
           "|---|---:|" + "---:|" * len(tools) + ("---:|" if len(tools) == 2 else "")]
    for k, label in keys:
        vals = [res[t][0]["r"].get(k) for t in tools]
        row = f"| {label} | {truth.get(k, '')} | " + " | ".join(fmt(v) for v in vals)
        if len(tools) == 2 and None not in vals and vals[1]:
            row += f" | {100 * (vals[0] - vals[1]) / vals[1]:+.1f} % |"
        elif len(tools) == 2:
            row += " | - |"
        else:
            row += " |"
        out.append(row)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forge", required=True)
    ap.add_argument("--vllm", help="vllm executable (omit to measure forge alone)")
    ap.add_argument("--tokenizer")
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--nice", type=int, default=-19,
                    help="priority for server and clients (needs CAP_SYS_NICE; 0 = leave)")
    ap.add_argument("--quick", action="store_true", help="a tenth of the requests")
    ap.add_argument("--keep", help="copy raw result JSONs into this directory")
    ap.add_argument("--only", help="comma-separated: throughput,overhead,agreement")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of the overhead scenario per tool (its tail is noisy)")
    a = ap.parse_args()
    if a.vllm and not a.tokenizer:
        sys.exit("--tokenizer is required with --vllm")
    scale = 10 if a.quick else 1
    only = set(a.only.split(",")) if a.only else {"throughput", "overhead", "agreement"}
    floor = jitter(a, 2 if a.quick else 5)
    thr = ovh = agr = None
    with tempfile.TemporaryDirectory() as tmp:
        if "throughput" in only:
            print("throughput: zero-latency server, 1,000 concurrent streams", file=sys.stderr)
            thr = run_pair(a, "throughput", (0, 0), 20000 // scale, 10, 1000, "inf", tmp)
        if "overhead" in only:
            print("overhead: 50 ms/token streams, Poisson 1,000 req/s (~1,000 in flight)",
                  file=sys.stderr)
            ovh = run_pair(a, "overhead", (0, 50), 10000 // scale, 20, None, "1000", tmp,
                           repeats=a.repeats)
        if "agreement" in only:
            print("agreement: TTFT 50 ms, ITL 10 ms, Poisson 40 req/s", file=sys.stderr)
            agr = run_pair(a, "agreement", (50, 10), 400 // max(1, scale // 4), 32, None,
                           "40", tmp)
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for f in Path(tmp).glob("*.json"):
                Path(a.keep, f.name).write_bytes(f.read_bytes())
    print(f"Client on CPU {a.client_cpu}, server on CPU {a.server_cpu}, nice {a.nice}; "
          f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}. Machine floor: an idle "
          f"1 ms sleeper on the client core wakes late by {floor[0]:.3f} ms p50, "
          f"{floor[1]:.3f} ms p99, {floor[2]:.1f} ms max.\n")
    if thr:
        print(perf_table("Throughput: zero-latency streams, 10 tokens, concurrency 1,000", thr))
        print("\n(The client is saturated here: added TTFT is its queueing, not its "
              "overhead.)\n")
    if ovh:
        title = "Overhead: 20 tokens at 50 ms, Poisson 1,000 req/s (~1,000 streams)"
        if a.repeats > 1:
            title += f"; median (range) of {a.repeats} runs"
        print(perf_table(title, ovh))
        print()
    if agr:
        # The server's own receive->first-chunk times (forge's run) are TTFT's truth.
        emit = agr["forge"][0]["emit"]
        truth = {"mean_tpot_ms": "10", "median_tpot_ms": "10", "median_itl_ms": "10",
                 "mean_ttft_ms": fmt(sum(emit) / max(1, len(emit))),
                 "median_ttft_ms": fmt(pct(emit, 50)), "p99_ttft_ms": fmt(pct(emit, 99))}
        print(agreement_table(agr, truth))


if __name__ == "__main__":
    main()
