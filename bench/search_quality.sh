#!/usr/bin/env bash
# Search quality: how many experiments forge's built-in agent needs to reach 95 % of the
# best score an exhaustive `forge sim predict` sweep finds, against random search on the
# same space, on eight (model, GPU, workload, objective) scenarios. The agent runs forge's
# loop (paired, interleaved repeats; forge's keep/revert rule) on noisy predictions; random
# search sees the noise-free truth.
#
# Usage: bench/search_quality.sh [NOISE_PCT] [AGENT_SEEDS] [RANDOM_SEEDS] [CAP]
#        (defaults 2, 10, 200, 40; about 6 minutes on 2 cores)
#   SQ_PATH=N|all                print the agent's path on scenario N (default none)
#   SQ_ONLY=N                    run scenario N alone
#   SQ_SURROGATE_ERR=σ           surrogate off by a fixed factor exp(σ/100·z) per config
#   SQ_SURROGATE_SEED=N          with SQ_SURROGATE_ERR: another draw of the wrong model
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q --release --example search_quality -- "${1:-2}" "${2:-10}" "${3:-200}" "${4:-40}"
