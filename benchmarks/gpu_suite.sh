#!/usr/bin/env bash
# The GPU measurements of issue #15 as ONE prepared call of at most 10 minutes on a lent GPU machine.
#
#   1. here (CPU, network):   bash benchmarks/gpu_suite.sh prepare
#        copies CLIP's BPE vocabulary (the machine has no open_clip) and the pypng wheel into .gpu_suite/
#        (ignored by git, carried with the call);
#   2. there (one `run` call, carry [".gpu_suite"], timeout_s 600):
#        OUT=$OUT bash benchmarks/gpu_suite.sh run
#
# `run` prints (and tees to $OUT/gpu_suite.log) the machine (GPU, CPU cores usable, torch/torchvision/
# transformers), then, each step bounded so the whole stays under 570 s:
#   a. tests/test_gpu_decode.py, its nvJPEG test included;
#   b. benchmarks/gpu_decode.py --device cuda on 2048 photos-like 512-px JPEGs, ViT-B/32 and ViT-L/14 shapes
#      (random weights of the real architectures: no hub on that machine): --decode gpu's |dcos| against the exact
#      path and its crops' |dlevel|, decode+resize+crop images/s (exact path on every core vs nvJPEG), the
#      model-only image forward rate (warm, batch 256) in fp32/fp16/bf16, and the steady-state end-to-end
#      images/s from the JPEG files with the CPU decode and the GPU decode, each as a % of the forward rate;
#   c. benchmarks/throughput.py --device cuda: whole `clipgauge score` processes (start-up and model load
#      included), exact and --decode gpu, against the model-only ceiling: ViT-B/32 in fp32/fp16/bf16, ViT-L/14 fp16;
# and ends with a results block (markdown) for benchmarks/RESULTS.md. JSON results land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
SUITE=.gpu_suite

if [ "${1:-}" = "prepare" ]; then
    mkdir -p "$SUITE"
    grep -qxF "/$SUITE/" .git/info/exclude 2>/dev/null || echo "/$SUITE/" >> .git/info/exclude
    python - <<'EOF'
import shutil, sys
sys.path.insert(0, "tools")
from tiny_clip import clip_bpe_vocab_path
shutil.copy(clip_bpe_vocab_path(), ".gpu_suite/bpe_simple_vocab_16e6.txt.gz")
EOF
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$SUITE" "pypng==0.20220715.0"
    ls -la "$SUITE"
    exit 0
fi
[ "${1:-}" = "run" ] || { echo "usage: $0 prepare|run" >&2; exit 2; }

OUT=${OUT:-/tmp/gpu_suite_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_suite.log") 2>&1
START=$(date +%s)
BUDGET=${BUDGET:-570}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
step() {  # step CAP_SECONDS command...: run within min(cap, time left)
    local cap=$1; shift
    local t; t=$(left); [ "$t" -lt "$cap" ] && cap=$t
    if [ "$cap" -lt 20 ]; then echo "## skipped (time left ${t}s): $*"; return; fi
    echo "## $(date -u +%H:%M:%S) (${cap}s max): $*"
    timeout "$cap" "$@" || echo "## exit $? after $(( $(date +%s) - START ))s: $*"
}

PY=${PYTHON:-python3}
if ls "$SUITE"/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$SUITE"/*.whl
fi
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export CLIPGAUGE_BPE_VOCAB="$PWD/$SUITE/bpe_simple_vocab_16e6.txt.gz" TRANSFORMERS_VERBOSITY=error
WORK=${WORK:-/tmp/clipgauge-bench}
# a dry run of the plumbing on a CPU machine: DEVICE=cpu IMAGES=16 PROMPTS=4 PER_PROMPT=2 ARCHS=vit-b-32
DEVICE=${DEVICE:-cuda} IMAGES=${IMAGES:-2048} PROMPTS=${PROMPTS:-256} PER_PROMPT=${PER_PROMPT:-8}
ARCHS=${ARCHS:-vit-b-32 vit-l-14}
CORES=$($PY -c "import os; print(len(os.sched_getaffinity(0)))")
echo "# gpu_suite $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
$PY - <<'EOF'
import os, platform, torch, torchvision, transformers
print(f"# python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"transformers {transformers.__version__}, CPU cores usable {len(os.sched_getaffinity(0))} "
      f"({os.cpu_count()} online), CUDA {torch.cuda.is_available()} "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}")
EOF

step 60 $PY -m pytest -q -p no:cacheprovider tests/test_gpu_decode.py -rs
# shellcheck disable=SC2086
step 260 $PY benchmarks/gpu_decode.py --device "$DEVICE" --images "$IMAGES" --workers "$CORES" --batch-size 256 \
    --arch $ARCHS --workdir "$WORK" --json "$OUT/gpu_decode.json"
# whole processes (start-up and load included): ViT-B/32 in every precision, ViT-L/14 in fp16 (its fp32/bf16
# end-to-end rates are in the steady-state numbers of gpu_decode.py above)
for arch in $ARCHS; do
    precisions="fp32 fp16 bf16"; cap=120
    [ "$arch" = "vit-l-14" ] && precisions="fp16" && cap=100
    rm -f "$WORK/report.json"
    # shellcheck disable=SC2086
    step $cap $PY benchmarks/throughput.py --device "$DEVICE" --arch "$arch" --prompts "$PROMPTS" \
        --per-prompt "$PER_PROMPT" --precision $precisions --skip torchmetrics --gpu-decode --repeat 1 \
        --batch-size 256 --workers "$CORES" --workdir "$WORK"
    [ -f "$WORK/report.json" ] && cp "$WORK/report.json" "$OUT/throughput_$arch.json"
done

echo "## results block (benchmarks/RESULTS.md), $(( $(date +%s) - START ))s"
$PY - "$OUT" "$CORES" <<'EOF'
import json, sys
from pathlib import Path
out, cores = Path(sys.argv[1]), sys.argv[2]
g = out / "gpu_decode.json"
if g.exists():
    r = json.loads(g.read_text())
    print(f"{cores} CPU cores; --decode gpu vs exact, per model:")
    for d in r["deviation"]:
        print(f"| {Path(d['model']).name} | max |dcos| {d['max_abs_dcos']:.2e} | mean {d['mean_abs_dcos']:.2e} | "
              f"crops max |dlevel| {d['crop_max_abs_level']} |")
    s = r["speed"]
    print(f"decode+resize+crop: exact {s['exact_images_per_s']:.0f} images/s on {s['workers']} threads, "
          f"device path on {s['device']} {s['device_images_per_s']:.0f} images/s")
    print("| arch | precision | forward images/s | e2e decode=cpu | e2e decode=gpu |")
    for arch, rates in r.get("forward", {}).items():
        e2e = r.get("end_to_end", {})
        for p, v in rates.items():
            c = e2e.get(f"{arch} decode=cpu", {}).get(p)
            d = e2e.get(f"{arch} decode=gpu", {}).get(p)
            cell = lambda x: f"{x:.0f} ({100 * x / v:.0f}%)" if x else "-"  # noqa: E731
            print(f"| {arch} | {p} | {v:.0f} | {cell(c)} | {cell(d)} |")
for t in sorted(out.glob("throughput_*.json")):
    rep = json.loads(t.read_text())
    for p, res in rep.items():
        row = {k: v.get("pairs_per_s") for k, v in res.items() if isinstance(v, dict) and "pairs_per_s" in v}
        print(f"{t.stem} {p}: " + ", ".join(f"{k} {v:.0f} images/s" for k, v in row.items())
              + (f"; --decode gpu |dcos| max {res['gpu_decode_abs_dcos']['max']:.1e}"
                 if "gpu_decode_abs_dcos" in res else ""))
EOF
