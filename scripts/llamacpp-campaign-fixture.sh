#!/usr/bin/env bash
# The llama.cpp checkout a CI campaign patches (issue 14): the llama.cpp copy vendored in
# the llama-cpp-python 0.3.36 sdist (unpacked by scripts/llama-server.sh), committed into
# its own git repository, plus a second commit carrying a deliberate slowdown
# (tests/fixtures/campaign/llamacpp/slowdown.diff). The campaign's patch series
# (tests/fixtures/campaign/llamacpp/patches/) applies on that second commit.
#
#   ckout=$(scripts/llamacpp-campaign-fixture.sh)   # prints the checkout's path
#
# Idempotent, cached under ~/.cache/forge-peers/campaign-llama/ (or $FORGE_PEERS): each run
# puts branch `main` back on the slowdown commit with a clean tree (`git reset --hard`,
# `git clean -fd`; ignored files stay), re-making that commit only when slowdown.diff
# changed. Build directories belong outside the checkout (forge's builder keeps them
# beside it, under campaign-llama/), so a reset keeps the incremental build.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=${FORGE_PEERS:-$HOME/.cache/forge-peers}
src=$root/llama_cpp_python-0.3.36/vendor/llama.cpp
ckout=$root/campaign-llama/llama.cpp
diff=$here/tests/fixtures/campaign/llamacpp/slowdown.diff
g() { git -C "$ckout" -c user.name=forge -c user.email=forge@localhost "$@"; }

if [ ! -d "$src" ]; then
  "$here/scripts/llama-server.sh" >/dev/null
fi
if ! g rev-parse -q --verify refs/tags/upstream >/dev/null 2>&1; then
  rm -rf "$ckout"
  mkdir -p "$ckout"
  # The sdist's copy has a `.git` file (it was a submodule); everything else is copied,
  # files its .gitignore names included, as upstream tracks them.
  tar -C "$src" --exclude=./.git -cf - . | tar -C "$ckout" -xf -
  g init -q -b main
  g add -f -A .
  g commit -q -m "upstream llama.cpp (llama-cpp-python 0.3.36)"
  g tag upstream
fi
want=$(sha256sum "$diff" | cut -d' ' -f1)
have=$(g tag -l --format='%(contents:subject)' slowdown 2>/dev/null || true)
if [ "$have" != "slowdown.diff sha256 $want" ]; then
  g checkout -q -f -B main upstream
  g clean -q -f -d
  g apply --index "$diff"
  g commit -q -m "deliberate slowdown (forge campaign flow check)"
  g tag -f -a -m "slowdown.diff sha256 $want" slowdown >/dev/null
fi
g checkout -q -f -B main slowdown
g clean -q -f -d
echo "$ckout"
