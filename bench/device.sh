#!/usr/bin/env bash
# The accelerator measurement in one command, for whoever is lent a GPU or TPU (nothing is downloaded; random
# weights of real shapes, from pard_jax/models/shapes.py and the shipped draft's config.json):
#   1. the call costs of a Llama-3.1-8B-shaped target and a PARD-2 draft of amd/PARD2-Llama-3.1-8B's shape
#      (Llama-3.2-1B reading 4 target hidden states) in bfloat16, against the device's HBM roofline: the TI and TD
#      draft calls, the verify call with and without the features, the TD and TI loop iterations (and so the loop
#      overhead), and the speedup they predict for accepted lengths 2 to 6;
#   2. the call costs of the shipped pair, SmolLM2-135M-Instruct and its 4-layer PARD draft, at k = 2 and 4;
#   3. the generation dry run of the Llama pair (configs/infer/pard_llama3.1_8b.yaml);
#   4. the lossless-decoding tests (speculative == target, exact sampling distribution) on the accelerator.
# Each step has its own time limit and a failing step does not stop the next. Needs jax (with the accelerator),
# flax, optax, numpy, safetensors, pytest and hypothesis; not grain, gguf or torch. Everything goes into OUT.
#   bash bench/device.sh [OUT]        (default OUT: device-out)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-device-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit, its output into OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    SECONDS=0
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    echo "== $name: exit $? after ${SECONDS}s"
    tail -n 25 "$OUT/$name.txt"
}
python -c 'import jax; print("jax", jax.__version__, jax.devices())' | tee "$OUT/devices.txt"
step llama8b_calls 240 python infer/bench_calls.py --random-weights --target meta-llama/Llama-3.1-8B-Instruct \
    --draft amd/PARD2-Llama-3.1-8B --dtype bfloat16 -k 8,15 --context 1024 --prefill-tokens 2048
step smollm2_calls 150 python infer/bench_calls.py --random-weights --target smollm2-135m-instruct \
    --draft smollm2-135m-pard -k 2,4
step dry_run 45 python infer/generate.py --config configs/infer/pard_llama3.1_8b.yaml --dry-run --no-fit
step lossless_tests 180 python -m pytest -x -q -p no:cacheprovider tests/test_decoding.py tests/test_pard2.py \
    tests/test_sampling.py
echo "wrote $OUT/: devices.txt, llama8b_calls.txt, smollm2_calls.txt, dry_run.txt, lossless_tests.txt"
