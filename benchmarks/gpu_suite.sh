#!/usr/bin/env bash
# The GPU benchmark suite of issue 11: every GPU measurement in one run, one Markdown report.
#
#   bash benchmarks/gpu_suite.sh            # full size on a CUDA GPU (H100/H200): < 8 minutes
#   bash benchmarks/gpu_suite.sh --tiny     # tiny sizes on CPU (also TINY=1): < ~5 minutes on 2 cores
#
# The report goes to $OUT/gpu_suite.md when OUT is set, else benchmarks/results/gpu_suite.md;
# each section's full stdout/stderr goes to gpu_suite_logs/ beside it. Large scratch files
# (images, checkpoints, HDF5 files) go to benchmarks/results/scratch and are deleted at exit.
# Python: .venv/bin/python, else `uv run python`. Nothing is installed or downloaded.
#
# Every section runs under `timeout`, with a deadline of the sum of the slots so far (time a
# section leaves unused goes to the next ones), so the whole suite ends within the sum of
# the slots (705 s on the GPU) whatever a section does. A section that fails or times out is
# a row with its error in the report; the suite goes on and exits 1 at the end.
#
# Environment overrides: DEVICE (cuda; cpu with --tiny), W_IMAGES, VIT_IMAGES, GRAM_IMAGES,
# SYNC_IMAGES, EXTRACT_IMAGES, FILES_IMAGES, MEM_IMAGES, ATLAS_COUNTS, ATLAS_IMAGES, and the
# slots W_SLOT, VIT_CLS_SLOT, VIT_FLAT_SLOT, GRAM_SLOT, SYNC_SLOT, EXTRACT_SLOT, FILES_SLOT,
# MEM_SLOT, ATLAS_SLOT (seconds).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

TINY=${TINY:-0}
for arg in "$@"; do
    case "$arg" in
        --tiny) TINY=1 ;;
        -h | --help)
            sed -n '2,20p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (use --tiny or nothing)" >&2
            exit 2
            ;;
    esac
done

RESULTS=${OUT:-$ROOT/benchmarks/results}
REPORT=$RESULTS/gpu_suite.md
LOGS=$RESULTS/gpu_suite_logs
SCRATCH=benchmarks/results/scratch # relative to the repository root, where everything runs
mkdir -p "$RESULTS" "$LOGS" "$SCRATCH/tmp"
rm -f "$LOGS"/*.out "$LOGS"/*.err
cleanup() { rm -rf "$SCRATCH"; }
trap cleanup EXIT
export TMPDIR=$ROOT/$SCRATCH/tmp # cli_overhead.py and cka_memory.py keep their temp dirs

if [[ -x .venv/bin/python ]]; then
    PY=(.venv/bin/python)
elif command -v uv > /dev/null 2>&1; then
    PY=(uv run python)
else
    echo "no .venv/bin/python and no uv: nothing to run Python with" >&2
    exit 1
fi

if [[ $TINY == 1 ]]; then
    MODE="tiny (CPU smoke test: sizes far too small for the targets)"
    DEVICE=${DEVICE:-cpu}
    SIZE=32
    BATCH=32
    RUNS=1
    W_MODELS=torchvision:resnet18,torchvision:resnet18
    W_IMAGES=${W_IMAGES:-64}
    # cli_overhead.py's bare script builds timm models at their own input size, so the tiny
    # ViT runs at test_vit's native 160 px
    VIT_MODELS=timm:test_vit,timm:test_vit
    VIT_SIZE=160
    VIT_IMAGES=${VIT_IMAGES:-64}
    VIT_BATCH=32
    ONE_MODEL=torchvision:resnet18
    GRAM_IMAGES=${GRAM_IMAGES:-64}
    SYNC_IMAGES=${SYNC_IMAGES:-96}
    EXTRACT_IMAGES=${EXTRACT_IMAGES:-64}
    EXTRACT_BATCH=32
    EXTRACT_WORKERS=1
    FILES_IMAGES=${FILES_IMAGES:-64}
    FILES_BATCH=32
    FILES_PROBE_MIB=256
    MEM_IMAGES=${MEM_IMAGES:-64}
    ATLAS_SPEC=timm:test_vit
    ATLAS_COUNTS=${ATLAS_COUNTS:-2,4}
    ATLAS_IMAGES=${ATLAS_IMAGES:-64}
    ATLAS_SIZE=160
    ATLAS_BATCH=32
    # on 2 cores each Python process spends 6-15 s importing torch (more when the machine is
    # shared); cli_overhead.py starts 4 of them even with --runs 1 (a warm-up round is fixed)
    W_SLOT=${W_SLOT:-110} VIT_CLS_SLOT=${VIT_CLS_SLOT:-110} VIT_FLAT_SLOT=${VIT_FLAT_SLOT:-110}
    GRAM_SLOT=${GRAM_SLOT:-50} SYNC_SLOT=${SYNC_SLOT:-50} EXTRACT_SLOT=${EXTRACT_SLOT:-50}
    FILES_SLOT=${FILES_SLOT:-70} MEM_SLOT=${MEM_SLOT:-90} ATLAS_SLOT=${ATLAS_SLOT:-150}
else
    MODE="full (GPU)"
    DEVICE=${DEVICE:-cuda}
    SIZE=224
    BATCH=256
    RUNS=2
    W_MODELS=torchvision:resnet50,torchvision:resnet50
    # 10,000 x 224 x 224 x 3 uint8 = 1.5 GB .npz; estimated 85-90 s on an H200 (3 rounds of a
    # bare ~11 s and a command ~16 s process, plus ~5 s making the inputs)
    W_IMAGES=${W_IMAGES:-10000}
    VIT_MODELS=timm:vit_base_patch16_224,timm:vit_base_patch16_224
    VIT_SIZE=224
    # two fp32 ViT-B/16 forwards run at ~550 images/s: 10,000 images would take ~3 min per
    # reduction; 1,536 (6 batches) keeps each ViT section near 60 s
    VIT_IMAGES=${VIT_IMAGES:-1536}
    VIT_BATCH=256
    ONE_MODEL=torchvision:resnet50
    GRAM_IMAGES=${GRAM_IMAGES:-1024}
    SYNC_IMAGES=${SYNC_IMAGES:-1536}
    # ResNet-50 paper preset flattened: ~11.3M values = 22.5 MB float16 per image; sized so
    # that a disk of only 500 MB/s still fits the slots
    EXTRACT_IMAGES=${EXTRACT_IMAGES:-256} # ~5.8 GB written
    EXTRACT_BATCH=128
    EXTRACT_WORKERS=15
    FILES_IMAGES=${FILES_IMAGES:-192} # two files of ~4.3 GB, 3 batches each
    FILES_BATCH=64
    FILES_PROBE_MIB=1024
    # built-in images at 224 px are drawn by 8 loader workers at ~1,000/s: 10,000 + 40,000
    # would take ~60-90 s; 2,560 + 10,240 takes ~30 s
    MEM_IMAGES=${MEM_IMAGES:-2560}
    # P-ATLAS at ViT-B size (issue 27): 12 models x 72 sub-layers flattened, 10,000 images;
    # one model's batch of 128 is ~9 GB of activations on the GPU, the Grams 57 MB
    ATLAS_SPEC=timm:vit_base_patch16_224
    ATLAS_COUNTS=${ATLAS_COUNTS:-12}
    ATLAS_IMAGES=${ATLAS_IMAGES:-10000}
    ATLAS_SIZE=224
    ATLAS_BATCH=128
    W_SLOT=${W_SLOT:-115} VIT_CLS_SLOT=${VIT_CLS_SLOT:-70} VIT_FLAT_SLOT=${VIT_FLAT_SLOT:-75}
    GRAM_SLOT=${GRAM_SLOT:-25} SYNC_SLOT=${SYNC_SLOT:-30} EXTRACT_SLOT=${EXTRACT_SLOT:-45}
    FILES_SLOT=${FILES_SLOT:-55} MEM_SLOT=${MEM_SLOT:-50} ATLAS_SLOT=${ATLAS_SLOT:-240}
fi
TOTAL_SLOTS=$((W_SLOT + VIT_CLS_SLOT + VIT_FLAT_SLOT + GRAM_SLOT + SYNC_SLOT + EXTRACT_SLOT + FILES_SLOT + MEM_SLOT + ATLAS_SLOT))

# ---------------------------------------------------------------------------------------
# report pieces: header, one summary row and one body per section, rebuilt after each one

SUITE_START=$SECONDS
SLOT_END=0
FAILED=0
SUMMARY=()
HEADER_FILE=$LOGS/header.md
BODIES=$LOGS/bodies.md
: > "$BODIES"

quoted() { # a command line as it can be pasted into bash
    local arg line=""
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:,=@+%-]+$ ]]; then
            line+="$arg "
        else
            line+="'${arg//\'/\'\\\'\'}' "
        fi
    done
    printf '%s' "${line% }"
}

cell() { # text fit for one Markdown table cell
    printf '%s' "$1" | tr '\n' ' ' | sed -e 's/|/\\|/g' -e 's/  */ /g' | cut -c1-300
}

write_report() {
    {
        cat "$HEADER_FILE"
        echo
        echo "## Summary"
        echo
        echo "| # | section | status | seconds (slot) | target | result |"
        echo "|---|---|---|---:|---|---|"
        local row
        for row in "${SUMMARY[@]+"${SUMMARY[@]}"}"; do
            echo "$row"
        done
        echo
        cat "$BODIES"
    } > "$REPORT.tmp"
    mv "$REPORT.tmp" "$REPORT"
}

commit=${GIT_COMMIT:-$(git rev-parse HEAD 2> /dev/null || echo "unknown (no git)")}
if [[ -z ${GIT_COMMIT:-} ]] && [[ -n $(git status --porcelain --untracked-files=no 2> /dev/null || true) ]]; then
    commit="$commit (with uncommitted changes to tracked files)"
fi
smi="n/a (no nvidia-smi)"
if command -v nvidia-smi > /dev/null 2>&1; then
    smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -3 | tr '\n' ';' || true)
fi
torch_info=$("${PY[@]}" - 2>&1 << 'EOF' || true
import os, platform
import torch
cuda = torch.cuda.is_available()
print(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if cuda:
    p = torch.cuda.get_device_properties(0)
    print(f"- device: {torch.cuda.get_device_name(0)}, {p.total_memory / 2**30:.0f} GiB")
else:
    print("- device: CPU only (torch.cuda.is_available() is False)")
print(f"- host: {os.cpu_count()} CPU cores, Python {platform.python_version()}, {platform.platform()}")
print(f"CUDA_AVAILABLE={int(cuda)}")
EOF
)
CUDA_AVAILABLE=$(printf '%s\n' "$torch_info" | sed -n 's/^CUDA_AVAILABLE=//p')
{
    echo "# GPU suite (issue 11)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- commit: $commit"
    echo "- nvidia-smi: $smi"
    printf '%s\n' "$torch_info" | grep -v '^CUDA_AVAILABLE=' || true
    echo "- load average at the start: $(cut -d' ' -f1-3 /proc/loadavg 2> /dev/null || echo n/a)"
    echo "- mode: $MODE; device for every section: $DEVICE"
    echo "- Python: \`${PY[*]}\`; scratch and TMPDIR under \`benchmarks/results/scratch\` (deleted at exit)"
    echo "- time slots: $TOTAL_SLOTS s in all; each section runs under \`timeout\` until the sum of the slots so far"
} > "$HEADER_FILE"
write_report

# ---------------------------------------------------------------------------------------
# verdicts: read a section's stdout, print one line (never fail)

verdict_ratio() { # cli_overhead.py's "| cka | bare | command | ratio | target |" row
    local ratio
    ratio=$(awk -F'|' '$2 ~ /^ *cka *$/ {gsub(/[ x]/, "", $5); print $5}' "$1" | tail -1 || true)
    if [[ -z $ratio ]]; then
        echo "no result row"
    elif awk -v r="$ratio" 'BEGIN { exit !(r <= 1.15) }'; then
        echo "met (${ratio}x)"
    else
        echo "not met (${ratio}x)"
    fi
}

verdict_line() { # the VERDICT line the suite's own scripts print
    local line
    line=$(grep -m1 '^VERDICT:' "$1" || true)
    if [[ -n $line ]]; then
        echo "${line#VERDICT: }"
    else
        echo "no VERDICT line"
    fi
}

verdict_extract() { # extract.py's flatten row, last column: % of the disk's write speed
    local share
    share=$(awk -F'|' '$2 ~ /extract --reduce flatten/ {gsub(/[ %]/, "", $7); print $7}' "$1" | tail -1 || true)
    if [[ -z $share ]]; then
        echo "no flatten row"
    elif awk -v s="$share" 'BEGIN { exit !(s >= 80) }'; then
        echo "met (${share}% of the disk's write speed)"
    else
        echo "not met (${share}% of the disk's write speed)"
    fi
}

verdict_memory() { # cka_memory.py's "growth from A to B images: host +x%, device +y%" line
    local line host device
    line=$(grep -m1 '^growth from' "$1" || true)
    host=$(printf '%s' "$line" | sed -nE 's/.*host ([-+]?[0-9.]+)%.*/\1/p')
    device=$(printf '%s' "$line" | sed -nE 's/.*device ([-+]?[0-9.]+)%.*/\1/p')
    if [[ -z $host ]]; then
        echo "no growth line"
        return
    fi
    local devnote="device ${device}%"
    [[ $DEVICE == cuda ]] || devnote="device n/a on CPU"
    if awk -v h="$host" -v d="${device:-0}" 'BEGIN { exit !(h <= 5 && d <= 5) }'; then
        echo "met (host ${host}%, $devnote)"
    else
        echo "not met (host ${host}%, $devnote)"
    fi
}

# ---------------------------------------------------------------------------------------

run_section() { # key title slot target verdict-function command...
    local key=$1 title=$2 slot=$3 target=$4 verdict=$5
    shift 5
    local out=$LOGS/$key.out err=$LOGS/$key.err
    SLOT_END=$((SLOT_END + slot))
    local now=$((SECONDS - SUITE_START))
    local limit=$((SLOT_END - now))
    local shown
    shown=$(quoted "$@")
    echo "[$((SECONDS - SUITE_START)) s] $title: up to $limit s" >&2
    local status result rc=0 took=0
    if ((limit < 10)); then
        status="skipped"
        result="no time left in the suite (slot $slot s, earlier sections ran over)"
        FAILED=1
        : > "$out"
        : > "$err"
    else
        local start=$SECONDS
        timeout -k 10 "$limit" "$@" > "$out" 2> "$err" || rc=$?
        took=$((SECONDS - start))
        if ((rc == 0)); then
            status="ok"
            result=$("$verdict" "$out") || result="could not read the result"
        else
            FAILED=1
            local last
            last=$(grep -v '^\s*$' "$err" | grep -v 'ERROR:.*DeviceProperties\|USDT:' | tail -1 || true)
            if ((rc == 124 || rc == 137)); then
                status="TIMED OUT"
                result="killed after $limit s; last stderr line: ${last:-none}"
            else
                status="FAILED (exit $rc)"
                result="${last:-no stderr}"
            fi
        fi
    fi
    SUMMARY+=("| ${key%%_*} | $title | $status | $took ($slot) | $(cell "$target") | $(cell "$result") |")
    {
        echo "## ${key%%_*}. $title"
        echo
        echo "Command (slot $slot s, limit $limit s, took $took s):"
        echo
        echo '```'
        echo "$shown"
        echo '```'
        echo
        # tables and notes; progress bars and the VERDICT line (stated below) dropped
        grep -v -e $'\xe2\x94\x81' -e '^VERDICT:' "$out" || true
        echo
        if [[ $status == ok ]]; then
            echo "**Target: $target — $result**"
        else
            echo "**Target: $target — $status: $result**"
        fi
        if [[ $status != ok ]]; then
            echo
            echo "Last lines of stderr:"
            echo
            echo '```'
            grep -v 'USDT:' "$err" | tail -25 || true
            echo '```'
        fi
        echo
    } >> "$BODIES"
    write_report
    echo "[$((SECONDS - SUITE_START)) s] $title: $status: $result" >&2
}

if [[ $DEVICE == cuda && $CUDA_AVAILABLE != 1 ]]; then
    echo "no CUDA device: every section refused; use --tiny (or DEVICE=cpu) on a CPU" >&2
    SUMMARY+=("| - | every section | FAILED | 0 | | no CUDA device (torch.cuda.is_available() is False); run with --tiny on a CPU |")
    write_report
    exit 1
fi

W_TARGET="ratio repcompare / bare forward <= 1.15x"
run_section 1_w "W: on-the-fly cka vs bare forward ($W_MODELS, paper, flatten, $W_IMAGES images)" \
    "$W_SLOT" "$W_TARGET" verdict_ratio \
    "${PY[@]}" benchmarks/cli_overhead.py --models "$W_MODELS" --layers paper --reduce flatten \
    --images "$W_IMAGES" --image-size "$SIZE" --batch-size "$BATCH" --device "$DEVICE" \
    --workloads cka --runs "$RUNS"

run_section 2a_vit_cls "W-ViT: every block output and sub-layer, --reduce cls ($VIT_MODELS, $VIT_IMAGES images)" \
    "$VIT_CLS_SLOT" "$W_TARGET" verdict_ratio \
    "${PY[@]}" benchmarks/cli_overhead.py --models "$VIT_MODELS" --layers sublayers --reduce cls \
    --images "$VIT_IMAGES" --image-size "$VIT_SIZE" --batch-size "$VIT_BATCH" --device "$DEVICE" \
    --workloads cka --runs "$RUNS"

run_section 2b_vit_flatten "W-ViT: every block output and sub-layer, --reduce flatten ($VIT_MODELS, $VIT_IMAGES images)" \
    "$VIT_FLAT_SLOT" "$W_TARGET" verdict_ratio \
    "${PY[@]}" benchmarks/cli_overhead.py --models "$VIT_MODELS" --layers sublayers --reduce flatten \
    --images "$VIT_IMAGES" --image-size "$VIT_SIZE" --batch-size "$VIT_BATCH" --device "$DEVICE" \
    --workloads cka --runs "$RUNS"

run_section 3_gram "Gram precision: float32, TF32, bf16 against float64" \
    "$GRAM_SLOT" "max abs CKA error <= 1e-4 against float64" verdict_line \
    "${PY[@]}" benchmarks/gram_precision.py --models "$W_MODELS" --layers paper --reduce flatten \
    --images "$GRAM_IMAGES" --image-size "$SIZE" --batch-size "$BATCH" --device "$DEVICE"

run_section 4_sync "Host synchronisation in the on-the-fly CKA batch loop" \
    "$SYNC_SLOT" "count and locate (aim: 0 per batch)" verdict_line \
    "${PY[@]}" benchmarks/host_sync.py --models "$W_MODELS" --layers paper --reduce flatten \
    --images "$SYNC_IMAGES" --image-size "$SIZE" --batch-size "$BATCH" --device "$DEVICE"

run_section 5_extract "Extract write bandwidth ($ONE_MODEL, paper, flatten, $EXTRACT_IMAGES images)" \
    "$EXTRACT_SLOT" "extract --reduce flatten >= 80% of the disk's sequential write speed" verdict_extract \
    "${PY[@]}" benchmarks/extract.py --model "$ONE_MODEL" --layers paper --images "$EXTRACT_IMAGES" \
    --image-size "$SIZE" --batch-size "$EXTRACT_BATCH" --workers "$EXTRACT_WORKERS" \
    --device "$DEVICE" --out "$SCRATCH/extract"

run_section 6_files "cka from two files ($ONE_MODEL, paper, flatten float16, $FILES_IMAGES images)" \
    "$FILES_SLOT" ">= 80% of the disk's read bandwidth, or GPU busy >= 90%" verdict_line \
    "${PY[@]}" benchmarks/cka_files.py --model "$ONE_MODEL" --layers paper --images "$FILES_IMAGES" \
    --image-size "$SIZE" --batch-size "$FILES_BATCH" --workers "$EXTRACT_WORKERS" \
    --probe-mib "$FILES_PROBE_MIB" --device "$DEVICE" --folder "$SCRATCH/files"

run_section 7_memory "Memory flat in N ($MEM_IMAGES vs $((4 * MEM_IMAGES)) images)" \
    "$MEM_SLOT" "host and device peaks of the larger run within 5% of the smaller" verdict_memory \
    "${PY[@]}" benchmarks/cka_memory.py --images "$MEM_IMAGES" --factor 4 --image-size "$SIZE" \
    --device "$DEVICE" --models "$W_MODELS" --layers paper --batch-size "$BATCH"

run_section 8_atlas "P-ATLAS: $ATLAS_COUNTS x $ATLAS_SPEC, sublayers, flatten, $ATLAS_IMAGES images" \
    "$ATLAS_SLOT" "writing <= 10% of a run; peak memory one model's batch plus the Grams" verdict_line \
    "${PY[@]}" benchmarks/atlas_scale.py --spec "$ATLAS_SPEC" --counts "$ATLAS_COUNTS" \
    --images "$ATLAS_IMAGES" --image-size "$ATLAS_SIZE" --batch-size "$ATLAS_BATCH" --device "$DEVICE"

echo "Total: $((SECONDS - SUITE_START)) s of $TOTAL_SLOTS s of slots." >> "$BODIES"
write_report
echo "report: $REPORT ($((SECONDS - SUITE_START)) s)" >&2
exit "$FAILED"
