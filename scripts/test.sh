#!/usr/bin/env bash
# The whole test suite, self-contained: installs what the tests need, then runs them.
#
# The llama.cpp end-to-end tests need a real llama-server and a small GGUF model:
# scripts/llama-server.sh builds them once (about 10 minutes on 2 cores) and caches them
# under ~/.cache/forge-peers (or $FORGE_PEERS); later runs reuse the cache. Their paths are
# exported for the tests, which then must find them (FORGE_REQUIRE_LLAMACPP=1). Set
# FORGE_SKIP_LLAMACPP=1 to skip the build; those tests then skip, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${FORGE_SKIP_LLAMACPP:-0}" != 1 ]; then
  peers=$(./scripts/llama-server.sh)
  while IFS='=' read -r key value; do
    case $key in
      LLAMA_SERVER) export LLAMA_SERVER=$value ;;
      MODEL) export SMOLLM2_GGUF=$value ;;
    esac
  done <<<"$peers"
  : "${LLAMA_SERVER:?scripts/llama-server.sh printed no LLAMA_SERVER}"
  : "${SMOLLM2_GGUF:?scripts/llama-server.sh printed no MODEL}"
  export FORGE_REQUIRE_LLAMACPP=1
fi
cargo test --all-targets
