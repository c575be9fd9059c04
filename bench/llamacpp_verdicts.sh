#!/usr/bin/env bash
# Verdicts on a real engine: RUNS `forge tune` runs of llama.cpp in a row, as a user would
# start them (SmolLM2-135M on CPU, 8 requests, concurrency 2, 4 experiments, every other
# setting forge's default — the 0.99 accuracy floor included). Each run must
#   - keep no recipe whose measured gain (point estimate) is negative, and
#   - end recommending a recipe that is not worse than the baseline side by side (the
#     end-of-run confirmation's point estimate ≥ 0, or the baseline itself).
# Prints one line per run and a summary; exits 1 when any run breaks either rule.
#
# Usage: bench/llamacpp_verdicts.sh [RUNS]   (default 5; about 4 minutes a run on 2 cores)
# Needs llama-server and the model: scripts/llama-server.sh builds them (cached under
# ~/.cache/forge-peers), or set LLAMA_SERVER and SMOLLM2_GGUF.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
if [ -z "${LLAMA_SERVER:-}" ] || [ -z "${SMOLLM2_GGUF:-}" ]; then
  paths=$(scripts/llama-server.sh)
  LLAMA_SERVER=$(sed -n 's/^LLAMA_SERVER=//p' <<<"$paths")
  SMOLLM2_GGUF=$(sed -n 's/^MODEL=//p' <<<"$paths")
fi
cargo build -q --release
forge=${CARGO_TARGET_DIR:-target}/release/forge
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The sample workload's first 8 requests, outputs capped at 64 tokens (a CPU run, not a GPU).
python3 - examples/sample_workload.jsonl "$work/w.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][:8]
with open(sys.argv[2], "w") as out:
    for r in rows:
        r["expected_output_tokens"] = min(64, r.get("expected_output_tokens", 64))
        out.write(json.dumps(r) + "\n")
PY
bad=0
for i in $(seq 1 "$runs"); do
  store="$work/store$i"
  start=$(date +%s)
  set +e
  "$forge" tune --engine llamacpp --device cpu --llm builtin \
    --engine-cmd "$LLAMA_SERVER" --model "$SMOLLM2_GGUF" --workload "$work/w.jsonl" \
    -c 2 --max-experiments 4 --seed "$i" --run-dir "$store" 2>"$work/err$i.txt"
  code=$?
  set -e
  wall=$(( $(date +%s) - start ))
  run=$(ls -d "$store"/runs/* | tail -1)
  "$forge" report --format json "$run" >"$work/report$i.json"
  python3 - "$run/experiments.jsonl" "$work/report$i.json" "$i" "$wall" "$code" <<'PY' || bad=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s = json.load(open(sys.argv[2]))["summary"]
run, wall, code = sys.argv[3], sys.argv[4], int(sys.argv[5])
fmt = lambda iv: f"{iv['gain_pct']:+.1f} % [{iv['lo_pct']:+.1f}, {iv['hi_pct']:+.1f}]"
kept = [r for r in rows if r["status"] == "kept"]
problems = []
for r in kept:
    iv = r.get("interval")
    if iv and iv["gain_pct"] < 0:
        problems.append(f"kept {r['id']} at {fmt(iv)}")
base = next(r for r in rows if r["status"] == "baseline")
rec = s["recommended_id"]
if rec == base["id"]:
    end = "the baseline"
else:
    g = s.get("gain")
    end = f"{rec} {fmt(g)} side by side" if g else f"{rec} (no confirmation)"
    if not g or g["gain_pct"] < 0:
        problems.append(f"recommends {rec}, not shown ≥ the baseline")
if s.get("fell_back_from"):
    end += f" (fell back from {', '.join(s['fell_back_from'])})"
if code != 0:
    problems.append(f"exit {code}")
kept_txt = "; ".join(f"{r['id']} {fmt(r['interval'])}" for r in kept if r.get("interval")) or "none"
verdict = "FAIL: " + "; ".join(problems) if problems else "ok"
print(f"run {run}: {len(rows)} rows, kept: {kept_txt}; recommends {end}; {wall} s — {verdict}")
sys.exit(1 if problems else 0)
PY
done
if [ "$bad" -ne 0 ]; then
  echo "FAIL: a run kept a recipe measured slower, or ended worse than its baseline"
  exit 1
fi
echo "ok: $runs runs, no negative keep, none ended worse than its baseline"
