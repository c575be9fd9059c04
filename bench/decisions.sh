#!/usr/bin/env bash
# Decision quality: how often a keep/revert rule keeps a candidate that is not truly better,
# forge's paired interval rule against the original tool's (one run each, +1 %), on the same
# 250 decisions over five (model, GPU, workload) scenarios, with 3 % run-to-run noise.
# forge's rule is its own code (`tune::decide::compare`) measuring through the in-process
# `Measure` (the simulator's predictions with run-to-run noise).
#
# Usage: bench/decisions.sh [NOISE_PCT] [DECISIONS_PER_SCENARIO]   (defaults 3, 50)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q --release --example decision_quality -- "${1:-3}" "${2:-50}"
