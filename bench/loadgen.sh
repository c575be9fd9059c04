#!/usr/bin/env bash
# Measures `forge bench` as a load generator, beside `vllm bench serve`, against forge's
# zero-latency loopback server: one core for the server, one for the client. Prints
# markdown tables (requests/s, SSE chunks/s, client CPU seconds, the client's added TTFT,
# and metric agreement between the two tools).
#
#   bench/loadgen.sh            # full run (about 3 minutes with vLLM)
#   bench/loadgen.sh --quick    # a tenth of the requests
#   FORGE_NO_PEERS=1 bench/loadgen.sh   # forge alone
#
# The peer client comes from scripts/peers/peer-clients.sh (vLLM's client side and a tiny
# tokenizer); set VLLM=... TOKENIZER=... to use others. Needs 2+ CPUs; nice -19 is applied
# when permitted, so other work on the machine disturbs the figures less.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
forge=$PWD/target/release/forge
peers=scripts/peers/peer-clients.sh
if [ -z "${FORGE_NO_PEERS:-}" ] && [ -z "${VLLM:-}" ] && [ -x "$peers" ]; then
  eval "$("$peers" | grep -E '^(VLLM|TOKENIZER)=')"
fi
# 1,000 streams need 1,000 sockets on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
args=(--forge "$forge")
if [ -z "${FORGE_NO_PEERS:-}" ] && [ -n "${VLLM:-}" ]; then
  args+=(--vllm "$VLLM" --tokenizer "$TOKENIZER")
fi
exec python3 bench/loadgen.py "${args[@]}" "$@"
