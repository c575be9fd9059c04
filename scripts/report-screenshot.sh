#!/usr/bin/env bash
# The README's report screenshot: a dry-run tune of the original's layer-2 scenario (T4 +
# Qwen2.5-3B, the simulator, no GPU), its report.html opened in headless Chromium
# (Debian's `chromium`; scripts/test.sh installs it) and saved as docs/report.png.
# Usage: scripts/report-screenshot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/report.png}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo run --release -q -- tune --dry-run --llm builtin --model Qwen/Qwen2.5-3B-Instruct \
  --sim-gpu T4 --workload examples/sample_workload.jsonl --start-layer 2 \
  --max-experiments 5 --slo tpot_ms=60 --run-dir "$work/.forge" >/dev/null 2>&1
run=$(ls -d "$work"/.forge/runs/*/ | tail -1)
chromium --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$work/profile" --window-size=1280,2700 \
  --screenshot="$out" "file://${run}report.html" >/dev/null 2>&1
echo "wrote $out"
