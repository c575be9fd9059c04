#!/usr/bin/env bash
# Agreement of the measurement core with itself: `forge bench` against a real
# `forge sim serve` process vs `forge sim predict` on the same config and workload
# (Llama-3.1-8B-Instruct, one simulated H100, vLLM defaults), in a release build at real
# time. Two workloads: a retrieval-style trace (~3,000-token prompts, Poisson 8 req/s,
# concurrency 16) and a short-prompt closed loop (1,024-token prompts, concurrency 8).
#
# Usage: bench/agreement.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release
F=target/release/forge
M=meta-llama/Llama-3.1-8B-Instruct
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
$F workload synth --input-len 3000 --output-len 200 --num-prompts 40 --range-ratio 0.3 --seed 5 -o "$work/rag.jsonl"
$F workload synth --input-len 1024 --output-len 128 --num-prompts 48 --range-ratio 0.3 --seed 3 -o "$work/short.jsonl"

run() { # name workload load-args...
  local name=$1 wl=$2; shift 2
  $F sim serve $M --port 0 --sim-boot-time-scale 0.01 >"$work/$name.log" 2>&1 &
  local pid=$!
  local port=""
  for _ in $(seq 100); do
    port=$(grep -oP 'Starting vLLM API server 0 on http://127.0.0.1:\K[0-9]+' "$work/$name.log" || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  $F bench --base-url "http://127.0.0.1:$port" --workload "$wl" --no-progress --output "$work/$name-bench.json" "$@" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  $F sim predict $M --workload "$wl" --output "$work/$name-predict.json" "$@" >/dev/null
}
run rag "$work/rag.jsonl" --concurrency 16 --request-rate 8
run short "$work/short.jsonl" --concurrency 8

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
print("| workload | metric | forge bench vs sim serve | sim predict | difference |")
print("|---|---|---:|---:|---:|")
for name, label in [("rag", "3,000-token prompts, 8 req/s, c=16"), ("short", "1,024-token prompts, closed loop, c=8")]:
    b = json.load(open(f"{w}/{name}-bench.json")); p = json.load(open(f"{w}/{name}-predict.json"))
    for k, unit in [("output_throughput", "tok/s"), ("median_ttft_ms", "ms"), ("median_tpot_ms", "ms")]:
        print(f"| {label} | {k} | {b[k]:.2f} {unit} | {p[k]:.2f} {unit} | {(b[k]/p[k]-1)*100:+.1f} % |")
PY
