#!/usr/bin/env bash
# Verify the GPU path end to end on a CUDA machine, in one command (docs/speed.md "Verifying a GPU machine").
#
#   bash scripts/gpu_check.sh --prepare   here, with a package index: the wheels a bare GPU machine lacks,
#                                         for its Python (3.12; VOP_GPU_PYTHON=3.x), packed into
#                                         .gpu_wheels/wheels.tar.xz (git-ignored, 54 MiB: carry it along)
#   bash scripts/gpu_check.sh             there, from the repo root: install them beside the machine's own
#                                         torch (no index), report the environment, run `pytest -m gpu`, then
#                                         the throughput benchmark on synthetic videos with the real B/32
#                                         architecture (random weights, no download), full and bias, every
#                                         data path; everything in one JSON: $OUT/gpu_check.json
#                                         (outputs/gpu_check/ without $OUT). Stage limits add up to 8 minutes
#                                         (+ ~1 minute to install): run it with a 10-minute limit.
#   bash scripts/gpu_check.sh --dry-run   all of it but the CUDA parts, on the CPU, with what is installed
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-run}
PY=${PYTHON:-python3}
GPU_PY=${VOP_GPU_PYTHON:-3.12}
ARCHIVE=.gpu_wheels/wheels.tar.xz
OUT_DIR=${OUT:-outputs/gpu_check}
WORK=${VOP_GPU_CHECK_DIR:-/tmp/vop_gpu_check}
# What the GPU image lacks (its torch, torchvision, transformers, numpy, PyYAML, regex, tqdm, safetensors,
# torchmetrics, Pillow and pytest stay as they are). Same versions as pyproject.toml's tested set.
BINARY=(hydra-core==1.3.8 omegaconf==2.3.1 decord==0.6.0 av==18.1.0 PyNvVideoCodec==2.2.4 simplejpeg==1.9.0
        ftfy==6.3.1 wcwidth==0.7.0 open_clip_torch==3.3.0)
SOURCE_ONLY=(antlr4-python3-runtime==4.9.3)   # hydra's parser runtime: an sdist only, built here (pure Python)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)

prepare() {
    local tmp
    tmp=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$GPU_PY" --implementation cp \
        "${PLATFORMS[@]}" -d "$tmp" "${BINARY[@]}" || exit 1
    "$PY" -m pip wheel -q --no-deps -w "$tmp" "${SOURCE_ONLY[@]}" || exit 1
    "$PY" scripts/gpu_check.py pack "$tmp" "$ARCHIVE" || exit 1
    rm -rf "$tmp"
    du -sh .gpu_wheels
}

install() {   # into a folder of its own on PYTHONPATH: nothing the image holds is replaced
    [ -f "$ARCHIVE" ] || { echo "no $ARCHIVE: run 'bash scripts/gpu_check.sh --prepare' where pip reaches an index, and carry .gpu_wheels"; exit 1; }
    "$PY" scripts/gpu_check.py unpack "$ARCHIVE" "$WORK/wheels" || exit 1
    local names=("${BINARY[@]%%==*}" "${SOURCE_ONLY[@]%%==*}")
    "$PY" -m pip install -q --no-index --find-links "$WORK/wheels" --no-deps --no-compile --target "$WORK/site" \
        "${names[@]}" || exit 1
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
}

STAGES=()
stage() {   # stage NAME SECONDS COMMAND...: run with a time limit, keep going, record rc and duration
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "=== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
    rc=${PIPESTATUS[0]}
    STAGES+=("\"$name\": {\"rc\": $rc, \"seconds\": $(( $(date +%s) - start ))}")
    echo "=== $name: rc $rc"
}

check() {
    local dry=$1 gpu_tests bench=()
    mkdir -p "$OUT_DIR" "$WORK"
    if [ "$dry" = 1 ]; then   # the carried wheels: unpack them and let pip resolve them for the GPU's Python
        [ -f "$ARCHIVE" ] && stage wheels 300 bash -c "'$PY' scripts/gpu_check.py unpack '$ARCHIVE' '$WORK/wheels' &&
            '$PY' -m pip install --dry-run --no-index --find-links '$WORK/wheels' --no-deps --only-binary=:all: \
            --python-version '$GPU_PY' --implementation cp ${PLATFORMS[*]} --target '$WORK/site-dry' ${BINARY[*]%%==*} ${SOURCE_ONLY[*]%%==*}"
    else
        install
    fi
    export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
    stage env 60 bash -c "'$PY' scripts/gpu_check.py env > '$OUT_DIR/env.json'; cat '$OUT_DIR/env.json'"
    gpu_tests=$(grep -rl --include="test_*.py" "mark.gpu" tests)
    stage pytest_gpu 180 "$PY" -m pytest -q -rs -m gpu $gpu_tests --junitxml="$OUT_DIR/gpu_tests.xml" -p no:cacheprovider
    # Synthetic 320x240 videos (PyAV writes them), decoded at short side 224; B/32 with random weights.
    bench=(data=synthetic model=clip_b32_random "paths.data_dir=$WORK/data" "hydra.run.dir=$WORK/bench"
           "bench.out=$OUT_DIR/bench.json" bench.build_cache_if_missing=true data.frame_size=224
           data.splits.width=320 data.splits.height=240 data.splits.frames=32 trainer.progress=false)
    if [ "$dry" = 1 ]; then
        bench+=(trainer.device=cpu data.splits.num_train=24 data.splits.num_test=8 bench.batch_size=4 bench.num_frames=4
                bench.warmup=1 bench.steps=2 data.num_workers=2)
    else
        bench+=(data.splits.num_train=256 data.splits.num_test=64 bench.batch_size=32 bench.num_frames=12
                bench.warmup=2 bench.steps=5 data.num_workers=8)
    fi
    stage bench 240 "$PY" scripts/bench_throughput.py "${bench[@]}"
    (IFS=,; echo "{${STAGES[*]}}" > "$OUT_DIR/stages.json")
    "$PY" scripts/gpu_check.py summary "$OUT_DIR"
    for entry in "${STAGES[@]}"; do   # the exit status: 0 only when every stage passed
        case "$entry" in *'"rc": 0,'*) ;; *) echo "FAILED stage: $entry"; return 1 ;; esac
    done
    echo "all stages passed"
}

case "$MODE" in
    --prepare) prepare ;;
    --dry-run) check 1 ;;
    run) check 0 ;;
    *) echo "usage: bash scripts/gpu_check.sh [--prepare | --dry-run]"; exit 2 ;;
esac
