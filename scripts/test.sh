#!/usr/bin/env bash
# The whole test suite, self-contained: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
