#!/usr/bin/env bash
# The whole test suite, self-contained: installs what the tests need, then runs them.
#
# The llama.cpp end-to-end tests need a real llama-server and a small GGUF model:
# scripts/llama-server.sh builds them once (about 10 minutes on 2 cores) and caches them
# under ~/.cache/forge-peers (or $FORGE_PEERS); later runs reuse the cache. Their paths are
# exported for the tests, which then must find them (FORGE_REQUIRE_LLAMACPP=1). Set
# FORGE_SKIP_LLAMACPP=1 to skip the build; those tests then skip, loudly.
#
# The OpenAI SDK test (tests/sim_openai_sdk.rs) drives the simulator with the official
# `openai` Python package, pinned below, from a venv made once under
# ~/.cache/forge-peers/py (or $FORGE_PEERS/py) with pip; later runs reuse it. Its python is
# exported as FORGE_PYTHON and the test must find the package (FORGE_REQUIRE_OPENAI=1).
# Set FORGE_SKIP_OPENAI=1 to skip the install; that test then skips, loudly.
#
# The HTML report's browser test (tests/report_browser.rs) opens it in headless Chromium:
# Debian's `chromium` package, installed here with apt-get when missing (as root, or with
# sudo). Set FORGE_SKIP_CHROMIUM=1 to skip the install; that test then skips, loudly.
set -euo pipefail
OPENAI_VERSION=3.51.0
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
if [ "${FORGE_SKIP_OPENAI:-0}" != 1 ]; then
  py_env="${FORGE_PEERS:-$HOME/.cache/forge-peers}/py"
  want="import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')"
  if ! "$py_env/bin/python" -c "$want" 2>/dev/null; then
    python3 -m venv "$py_env"
    "$py_env/bin/python" -m pip install --quiet --disable-pip-version-check \
      "openai==$OPENAI_VERSION"
  fi
  export FORGE_PYTHON="$py_env/bin/python"
  export FORGE_REQUIRE_OPENAI=1
fi
if [ "${FORGE_SKIP_CHROMIUM:-0}" != 1 ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
      { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; }
  fi
  export FORGE_REQUIRE_CHROMIUM=1
fi
cargo test --all-targets
