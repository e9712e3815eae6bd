#!/usr/bin/env bash
# Pipeline parallelism on the GPU machine, from the repository root after bench/stage_gpu.sh (the binary and
# plugins in .carry/). Results under $OUT (or /tmp/pipeline).
#  - On any GPU machine: the stage path on GPU 0, with processes sharing it (hidden states over TCP: NCCL
#    refuses two ranks on one GPU). The tiny fixture model (its real weights) over 3 stages and OPT-1.3b over 2,
#    each against the one-process run's token ids; the timings are printed but mean nothing for scaling.
#  - With 2 or more GPUs: OPT-30B and OPT-66B over 1, 2 and 4 GPUs (as many as there are), one process a GPU,
#    hidden states over NCCL with NVLink multicast off (NCCL_NVLS_ENABLE=0). The scaling efficiency is each
#    run's throughput / (stages x the one-GPU throughput), all measured in this call.
set -uo pipefail
OUT=${OUT:-/tmp/pipeline}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/.carry/lib:/usr/local/cuda/lib64 NCCL_NVLS_ENABLE=0
[ -d build/plugins ] || export FLEXRT_PLUGIN_PATH=$PWD/.carry/plugins  # else flexrt finds its build dir's
FLEXRT=$PWD/.carry/flexrt
fail=0

ids() { python3 -c "import json, sys; [print(json.loads(l)['token_ids']) for l in open(sys.argv[1])]" "$1"; }
throughput() { sed -n 's/.*total throughput: \([0-9.]*\) token\/s.*/\1/p' "$1" | tail -1; }

# pipeline NAME WORLD SHARED ARGS...: WORLD ranks at once; SHARED=1 puts them all on GPU 0. Logs $OUT/NAME.rankR.log.
pipeline() {
    local name=$1 world=$2 shared=$3
    shift 3
    local port=$((29500 + RANDOM % 2000)) pids=() r
    for ((r = 0; r < world; r++)); do
        if [ "$shared" = 1 ]; then
            # Each process's pool a slice of the one GPU (else the first takes 90% of it).
            CUDA_VISIBLE_DEVICES=0 "$FLEXRT" --progress --rank $r --world "$world" --rendezvous 127.0.0.1:$port "$@" \
                --set runtime.gpu_memory_gib=$((60 / world)) >"$OUT/$name.rank$r.log" 2>&1 &
        else
            "$FLEXRT" --progress --rank $r --world "$world" --rendezvous 127.0.0.1:$port "$@" >"$OUT/$name.rank$r.log" 2>&1 &
        fi
        pids+=($!)
    done
    local code=0
    for pid in "${pids[@]}"; do wait "$pid" || code=$?; done
    return $code
}

# same_ids NAME SINGLE_JSONL PIPELINE_JSONL
same_ids() {
    if [ -s "$2" ] && [ -s "$3" ] && diff <(ids "$2") <(ids "$3") >/dev/null; then
        echo "$1: the same token ids as one process ($(ids "$2" | wc -l) sequences)"
    else
        echo "$1: DIFFERENT token ids from one process (or a run failed; logs in $OUT)"
        fail=1
    fi
}

echo "== the stage path on one GPU"
cat >"$OUT/tiny.toml" <<EOF
[model]
name = "custom"
weights = "$PWD/tests/data/tiny_opt/weights"
num_layers = 3
hidden_size = 64
num_heads = 4
ffn_size = 256
vocab_size = 512
max_seq_len = 64
[run]
prompt_len = 16
gen_len = 8
[policy]
gpu_batch_size = 1
num_gpu_batches = 2
weights = { gpu = 50, cpu = 50 }
cache = { gpu = 50, cpu = 50 }
[schedule]
plugin = "overlap_multi"
[runtime]
compute = "cuda"
EOF
"$FLEXRT" --config "$OUT/tiny.toml" --set policy.num_gpu_batches=4 \
    --set run.output="\"$OUT/tiny.single.jsonl\"" >"$OUT/tiny.single.log" 2>&1
pipeline tiny 3 1 --config "$OUT/tiny.toml" --set 'pipeline.transport="tcp"' --set pipeline.micro_batches=2 \
    --set run.output="\"$OUT/tiny.pipeline.jsonl\""
same_ids "tiny OPT (fixture weights), 3 stages x 2 micro-batches on GPU 0" "$OUT/tiny.single.jsonl" "$OUT/tiny.pipeline.jsonl"

common=(--set 'model.name="opt-1.3b"' --set run.prompt_len=256 --set run.gen_len=16 --set policy.gpu_batch_size=16
    --set 'runtime.compute="cuda"' --set 'policy.weights={gpu=100,cpu=0}')
"$FLEXRT" "${common[@]}" --set policy.num_gpu_batches=2 --set 'schedule.plugin="overlap_multi"' \
    --set run.output="\"$OUT/1.3b.single.jsonl\"" >"$OUT/1.3b.single.log" 2>&1
pipeline 1.3b 2 1 "${common[@]}" --set policy.num_gpu_batches=1 --set 'schedule.plugin="overlap_single"' \
    --set 'pipeline.transport="tcp"' --set run.output="\"$OUT/1.3b.pipeline.jsonl\""
same_ids "OPT-1.3b (dummy weights), 2 stages x 2 micro-batches on GPU 0" "$OUT/1.3b.single.jsonl" "$OUT/1.3b.pipeline.jsonl"
echo "  one process: $(throughput "$OUT/1.3b.single.log") token/s; 2 processes sharing the GPU: $(throughput "$OUT/1.3b.rank1.log") token/s"

gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$gpus" -ge 2 ]; then
    echo "== scaling over $gpus GPUs (NCCL, NCCL_NVLS_ENABLE=0)"
    echo "model | GPUs | token/s | scaling efficiency"
    for model in opt-30b opt-66b; do
        args=(--set "model.name=\"$model\"" --set run.prompt_len=512 --set run.gen_len=32 --set policy.gpu_batch_size=32
            --set policy.num_gpu_batches=1 --set 'schedule.plugin="overlap_single"' --set 'runtime.compute="cuda"')
        # One GPU: what does not fit stays in host memory (66B); more GPUs: all on the GPUs.
        one=$([ $model = opt-30b ] && echo "{gpu=100,cpu=0}" || echo "{gpu=40,cpu=60}")
        "$FLEXRT" "${args[@]}" --set "policy.weights=$one" >"$OUT/$model.1.log" 2>&1
        base=$(throughput "$OUT/$model.1.log")
        echo "$model | 1 | ${base:-failed} | 1.00"
        for world in 2 4; do
            [ "$world" -le "$gpus" ] || continue
            pipeline "$model.$world" "$world" 0 "${args[@]}" --set 'policy.weights={gpu=100,cpu=0}' --set 'pipeline.transport="nccl"'
            tp=$(throughput "$OUT/$model.$world.rank$((world - 1)).log")
            eff=$(python3 -c "import sys; b, t = float(sys.argv[1] or 0), float(sys.argv[2] or 0); print(f'{t / ($world * b):.2f}' if b else '-')" "$base" "$tp")
            echo "$model | $world | ${tp:-failed} | $eff"
        done
    done
else
    echo "== scaling: not run (this machine has $gpus GPU)"
fi
exit $fail
