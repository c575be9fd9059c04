#!/usr/bin/env bash
# Installs the real benchmark clients forge is measured against — `vllm bench serve`
# (vLLM 0.33.0) and guidellm 0.8.1 — into one virtualenv, without a GPU, plus a small
# offline tokenizer for their --tokenizer flag. Idempotent; about 4 minutes and 7 GB.
#
#   shared/tools/peer-clients.sh            # install (or reuse) and print the paths
#   $VENV/bin/vllm bench serve --backend openai --base-url http://127.0.0.1:PORT \
#       --model NAME --tokenizer $TOKENIZER --dataset-name random ...
#
# Notes: `import vllm` needs torch (the CUDA wheel, with its nvidia libraries, imports fine
# without a GPU). `vllm serve --help=all` needs VLLM_TARGET_DEVICE=cpu on a machine
# without a GPU. guidellm's CLI is `guidellm run --backend kind=openai_http,target=URL,...`.
# Copied from the project's shared/tools/peer-clients.sh (with its requirements file and
# tokenizer maker) so benchmarks run from a plain checkout; keep them in step.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${FORGE_PEERS:-$HOME/.cache/forge-peers}
venv=$root/clients
tok=$root/tiny-tokenizer
mkdir -p "$root"
if [ ! -x "$venv/bin/vllm" ] || [ ! -x "$venv/bin/guidellm" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --no-cache-dir --no-deps vllm==0.33.0
  "$venv/bin/pip" install -q --no-cache-dir --no-deps -r "$here/peer-clients-requirements.txt"
fi
if [ ! -f "$tok/tokenizer.json" ]; then
  HF_HUB_OFFLINE=1 "$venv/bin/python" "$here/make_tiny_tokenizer.py" "$tok" 2048 >/dev/null
fi
echo "VENV=$venv"
echo "VLLM=$venv/bin/vllm"
echo "GUIDELLM=$venv/bin/guidellm"
echo "TOKENIZER=$tok"
