#!/usr/bin/env bash
# Search quality: how many experiments the built-in agent needs to reach 95 % of the best
# score an exhaustive `forge sim predict` sweep finds, against random search on the same
# space, on seven (model, GPU, workload, objective) scenarios. The agent runs forge's loop
# (paired, interleaved repeats; forge's keep/revert rule) on noisy predictions; random search
# sees the noise-free truth.
#
# Usage: bench/search_quality.sh [NOISE_PCT] [AGENT_SEEDS] [RANDOM_SEEDS] [CAP]
#        (defaults 2, 10, 200, 40)
#   SQ_PATH=N|all  also print the agent's path (scenario N, first seed)
#   SQ_ONLY=N      run scenario N alone
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --example search_quality
./target/release/examples/search_quality "${1:-2}" "${2:-10}" "${3:-200}" "${4:-40}"
