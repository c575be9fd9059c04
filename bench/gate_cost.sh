#!/usr/bin/env bash
# Gate cost: the GPU time forge's cross-framework gate spends to find each framework's best
# deployment, against the seed's recipe (8 candidates per framework x scenarios x a QPS
# bisection of at most 5 rounds, one run each), and whether either winner falls more than
# 2 % short of an exhaustive, noise-free sweep of the framework's space. In process on the
# simulator's predictions (Llama-3.1-8B-Instruct, simulated H100, chat 1000/1000 and
# summarization 8000/1000 x 80 prompts, the cookbook SLA); GPU time = simulated seconds of
# every run + 90 s per server boot. forge's searches use `forge compare`'s defaults (16
# requests per scenario, at most 2 paired repeats per decision). Details in
# examples/gate_cost.rs.
#
# Usage: bench/gate_cost.sh [NOISE_PCT] [REPEATS] [SEARCH_BUDGET]   (defaults 2, 3, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q --release --example gate_cost -- "${1:-2}" "${2:-3}" "${3:-4}" 2>/dev/null
