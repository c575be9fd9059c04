#!/usr/bin/env bash
# Times the simulator's offline predictor on a synthetic 10,000-request workload.
# The target is < 1 s of wall time in a release build, for the whole `forge sim predict`
# command (process start, workload loading, tokenizing, simulating, JSON).
#
# Usage: bench/sim_predict.sh [NUM_REQUESTS] [RATE_PER_S]   (defaults: 10000, 20)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
rate="${2:-20}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A ShareGPT-like chat mix (seeded): 10 shared system prompts of 20-200 words (prefix-cache
# hits), user turns of 10-400 words, expected outputs of 10-500 tokens; ~430 prompt and
# ~255 output tokens per request on average. Pass a larger mix to stress it.
python3 - "$n" "$work/workload.jsonl" <<'PY'
import json, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
words = ["alpha", "beta", "gamma", "delta", "token", "cache", "batch", "model", "serve",
         "query", "reply", "graph", "layer", "block", "shard", "fleet", "route", "score"]
systems = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 200))) for _ in range(10)]
with open(out, "w") as f:
    for i in range(n):
        user = " ".join(rng.choice(words) for _ in range(rng.randint(10, 400)))
        req = {"messages": [{"role": "system", "content": rng.choice(systems)},
                            {"role": "user", "content": f"{i}: {user}"}],
               "expected_output_tokens": rng.randint(10, 500)}
        f.write(json.dumps(req) + "\n")
PY

cargo build --release --quiet
for i in 1 2 3; do
  /usr/bin/time -f "run $i: wall %e s, max RSS %M KiB" \
    target/release/forge sim predict meta-llama/Llama-3.1-8B-Instruct --sim-noise 2 \
    --workload "$work/workload.jsonl" --request-rate "$rate" --output "$work/out.json" >/dev/null
done
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('predicted', r['completed'], 'requests,', round(r['output_throughput']), 'output tok/s')" "$work/out.json"
