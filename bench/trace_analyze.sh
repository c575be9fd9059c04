#!/usr/bin/env bash
# Trace analysis cost: wall time and peak memory (max RSS) of `forge trace analyze` against
# the same kernel table computed in Python the way the campaign seed's scripts do it
# (bench/trace_analyze_ref.py: json.load of the whole trace, then the contract's analysis,
# rule for rule as src/trace/), on the four shared traces (tests/fixtures/traces/) and on a
# ~1 GB trace made by repeating the vLLM B200 prefill trace with shifted timestamps and ids
# (bench/trace_analyze_gen.py, cached under ~/.cache/forge-bench/). Before any figure is
# believed, the two tables must agree: category, GPU time, share, launches and Python
# location of every row, or the script stops with the diff.
#
# Peers, when installed in ~/.cache/forge-peers/ (see bench/README.md): HolisticTraceAnalysis
# (get_gpu_kernel_breakdown) and AMD's TraceLens (kernel launchers summary). They compute
# their own tables, so only their time and memory are shown.
#
# Usage: bench/trace_analyze.sh [REPEATS]   (default 5: medians over the shared traces; the
#        1 GB trace runs once)
#   FORGE_BIN=path     use this forge binary instead of building the tree in release mode
#   FORGE_NO_BIG=1     the shared traces only
#   FORGE_NO_PEERS=1   forge and the Python reference only
#   PEER_LIMIT_S=900 PEER_MEM_GB=20   a peer's run is stopped past these (time, address space)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-5}
PEERS=$HOME/.cache/forge-peers
PEER_LIMIT_S=${PEER_LIMIT_S:-900}
PEER_MEM_GB=${PEER_MEM_GB:-20}

if [[ -n "${FORGE_BIN:-}" ]]; then
    forge=$FORGE_BIN
else
    cargo build -q --release
    forge=${CARGO_TARGET_DIR:-target}/release/forge
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure OUT CMD...: run CMD with stdout to OUT, stderr to OUT.err; print "wall_ms cpu_ms
# max_rss_kb status". Peak memory is /usr/bin/time's (-v calls it "Maximum resident set size");
# wall and CPU (user + system, from wait4(2), which counts /usr/bin/time's child) are taken
# here to the microsecond, /usr/bin/time printing CPU to 10 ms only. Without /usr/bin/time,
# wait4's max RSS (which then includes this wrapper's forked Python, ~14 MB, as a floor).
measure() {
    python3 - "$@" <<'PY'
import os, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
timer = os.access("/usr/bin/time", os.X_OK)
if timer:
    cmd = ["/usr/bin/time", "-f", "%M", "-o", out + ".rss"] + cmd
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stdout=open(out, "wb"), stderr=open(out + ".err", "wb"))
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
rc = os.waitstatus_to_exitcode(status)
kb = int(open(out + ".rss").read().split()[-1]) if timer and rc == 0 else ru.ru_maxrss
print(f"{wall * 1000:.1f} {(ru.ru_utime + ru.ru_stime) * 1000:.1f} {kb} {rc}")
PY
}

# median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# agree FORGE_MD REF_MD: "identical rows" (every cell of the first kernel table), "same
# numbers" (a kernel name or CPU op differs), or fail loudly. forge's other tables (stages'
# overlap and fusion tables) have no counterpart in the reference and are not compared.
agree() {
    python3 - "$1" "$2" <<'EOF'
import re, sys
def rows(path):
    text = open(path, encoding="utf-8").read()
    body = text.split("| --- | --- | ---: | ---: | ---: | --- | --- |\n", 1)
    if len(body) != 2:
        sys.exit(f"no kernel table in {path}:\n{text[:2000]}")
    out = []
    for line in body[1].splitlines():
        if not line.startswith("| "):
            break
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        out.append(cells)
    return text, out
ft, f = rows(sys.argv[1])
rt, r = rows(sys.argv[2])
key = lambda rows: [c[1:6] for c in rows]  # category, GPU time, share, launches, location
if key(f) != key(r):
    import difflib
    print("forge and the Python reference disagree (category | GPU time | share | launches"
          " | Python location):", file=sys.stderr)
    for l in difflib.unified_diff([" | ".join(c) for c in key(f)], [" | ".join(c) for c in key(r)],
                                  "forge", "python", lineterm=""):
        print(l, file=sys.stderr)
    sys.exit(1)
print("identical rows" if f == r else "same numbers")
EOF
}

traces=(tests/fixtures/traces/*.json.gz)
if [[ -z "${FORGE_NO_BIG:-}" ]]; then
    big=$(python3 bench/trace_analyze_gen.py tests/fixtures/traces/vllm-b200-gptoss-prefill.json.gz \
        "$HOME/.cache/forge-bench/vllm-b200-gptoss-prefill-1GB.json")
    traces+=("$big")
fi
hta=$PEERS/hta/bin/python
tracelens=$PEERS/amd-tracelens/bin/python
[[ -n "${FORGE_NO_PEERS:-}" || ! -x $hta ]] && hta=
[[ -n "${FORGE_NO_PEERS:-}" || ! -x $tracelens ]] && tracelens=
HTA_RUN='import sys, os, logging
logging.disable(logging.CRITICAL)
from hta.trace_analysis import TraceAnalysis
k, d = TraceAnalysis(trace_dir=sys.argv[1]).get_gpu_kernel_breakdown(
    visualize=False, num_kernels=1000000, duration_ratio=1.0)
print(d.to_string())'
TRACELENS_RUN='import sys
from TraceLens import TreePerfAnalyzer
a = TreePerfAnalyzer.from_file(sys.argv[1], add_python_func=True)
print(TreePerfAnalyzer.get_df_kernel_launchers_summary(a.get_df_kernel_launchers(include_call_stack=True)).to_string())'

# peer NAME PYTHON CODE ARG N: "median_ms max_rss_kb" over N runs, or why there is none.
peer() {
    local name=$1 py=$2 code=$3 arg=$4 n=$5 ms=() kb=0 m
    for ((i = 0; i < n; i++)); do
        read -r t _ rss rc < <(measure "$work/$name.out" timeout "$PEER_LIMIT_S" \
            bash -c 'ulimit -v "$1"; shift; exec "$@"' - "$((PEER_MEM_GB * 1024 * 1024))" "$py" -c "$code" "$arg")
        if [[ $rc == 124 ]]; then echo "over ${PEER_LIMIT_S} s"; return; fi
        if grep -qE "MemoryError|Not enough memory|Cannot allocate memory" "$work/$name.out.err"; then echo "over ${PEER_MEM_GB} GB"; return; fi
        if [[ $rc != 0 ]]; then echo "failed($rc)"; tail -n 3 "$work/$name.out.err" >&2; return; fi
        ms+=("$t")
        ((rss > kb)) && kb=$rss
    done
    m=$(printf '%s\n' "${ms[@]}" | median)
    echo "$m $kb"
}

fmt_s() { awk -v ms="$1" 'BEGIN {if (ms < 10000) printf "%.3f s", ms / 1000; else printf "%.1f s", ms / 1000}'; }
ratio() { awk -v f="$1" -v p="$2" 'BEGIN {printf "%.1f×", p / (f > 0 ? f : 1)}'; }
fmt_mb() { awk -v kb="$1" 'BEGIN {printf "%.0f MB", kb / 1024}'; }

echo "forge: $forge; $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(times: median wall of $REPEATS runs, 1 run for traces over 100 MB; CPU = user + system; a file's size as stored, gzip or not)"
echo
echo "| trace | size | forge | python (json.load) | speedup | forge CPU | python CPU | CPU ratio | forge peak RSS | python peak RSS | tables |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
peer_lines=()
for t in "${traces[@]}"; do
    n=$REPEATS
    size=$(stat -c %s "$t")
    ((size > 100000000)) && n=1
    fms=() pms=() fcs=() pcs=() fkb=0 pkb=0
    for ((i = 0; i < n; i++)); do
        read -r ms cpu kb rc < <(measure "$work/forge.md" "$forge" trace analyze "$t")
        [[ $rc == 0 ]] || { echo "forge failed on $t:" >&2; cat "$work/forge.md.err" >&2; exit 1; }
        fms+=("$ms") fcs+=("$cpu"); ((kb > fkb)) && fkb=$kb
        read -r ms cpu kb rc < <(measure "$work/ref.md" python3 bench/trace_analyze_ref.py "$t")
        [[ $rc == 0 ]] || { echo "the Python reference failed on $t:" >&2; cat "$work/ref.md.err" >&2; exit 1; }
        pms+=("$ms") pcs+=("$cpu"); ((kb > pkb)) && pkb=$kb
    done
    same=$(agree "$work/forge.md" "$work/ref.md") || { echo "on $t" >&2; exit 1; }
    fm=$(printf '%s\n' "${fms[@]}" | median)
    pm=$(printf '%s\n' "${pms[@]}" | median)
    fc=$(printf '%s\n' "${fcs[@]}" | median)
    pc=$(printf '%s\n' "${pcs[@]}" | median)
    hsize=$(awk -v b="$size" 'BEGIN {
        if (b >= 1e9) printf "%.2f GB", b / 1e9; else if (b >= 1e6) printf "%.1f MB", b / 1e6; else printf "%.0f kB", b / 1e3 }')
    echo "| $(basename "$t") | $hsize | $(fmt_s "$fm") | $(fmt_s "$pm") | $(ratio "$fm" "$pm") | $(fmt_s "$fc") | $(fmt_s "$pc") | $(ratio "$fc" "$pc") | $(fmt_mb "$fkb") | $(fmt_mb "$pkb") | $same |"
    if [[ -n $hta || -n $tracelens ]]; then
        line="| $(basename "$t") | $(fmt_s "$fm"), $(fmt_mb "$fkb")"
        if [[ -n $hta ]]; then
            mkdir -p "$work/hta" && rm -f "$work/hta/"* && ln -s "$(realpath "$t")" "$work/hta/"
            r=$(peer hta "$hta" "$HTA_RUN" "$work/hta" "$n")
            [[ $r == *" "* ]] && r="$(fmt_s "${r% *}"), $(fmt_mb "${r#* }")"
            line+=" | $r"
        fi
        if [[ -n $tracelens ]]; then
            r=$(peer tracelens "$tracelens" "$TRACELENS_RUN" "$t" "$n")
            [[ $r == *" "* ]] && r="$(fmt_s "${r% *}"), $(fmt_mb "${r#* }")"
            line+=" | $r"
        fi
        peer_lines+=("$line |")
    fi
done
if ((${#peer_lines[@]})); then
    echo
    echo "Peers (their own tables; time and peak RSS only):"
    echo
    h="| trace | forge"
    s="|---|---:"
    [[ -n $hta ]] && h+=" | HolisticTraceAnalysis get_gpu_kernel_breakdown" && s+="|---:"
    [[ -n $tracelens ]] && h+=" | TraceLens kernel launchers summary" && s+="|---:"
    echo "$h |"
    echo "$s|"
    printf '%s\n' "${peer_lines[@]}"
fi
