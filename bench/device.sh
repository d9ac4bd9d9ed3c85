#!/usr/bin/env bash
# The accelerator measurement in one command, for whoever is lent a GPU or TPU: the call costs of a
# Llama-3.1-8B-shaped target and a Llama-3.2-1B-shaped PARD draft in bfloat16 with random weights (nothing is
# downloaded; the shapes come from pard_jax/models/shapes.py) against the device's HBM roofline, the PARD
# speedup they predict for accepted lengths 2 to 6, and the generation dry run of that pair. Needs jax (with the
# accelerator), flax, optax, numpy, safetensors; not grain, gguf or torch. Everything goes into OUT.
#   bash bench/device.sh [OUT]        (default OUT: device-out)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-device-out}"
mkdir -p "$OUT"
python -c 'import jax; print("jax", jax.__version__, jax.devices())' | tee "$OUT/devices.txt"
python infer/bench_calls.py --random-weights --target meta-llama/Llama-3.1-8B-Instruct \
    --draft amd/PARD-Llama-3.2-1B --dtype bfloat16 -k 8,12 --context 1024 --prefill-tokens 2048 \
    --out "$OUT" 2>&1 | tee "$OUT/bench_calls.log"
python infer/generate.py --config configs/infer/pard_llama3.1_8b.yaml --dry-run --no-fit 2>&1 | tee "$OUT/dry_run.txt"
echo "wrote $OUT/: devices.txt, bench_calls.txt, bench_calls.json, bench_calls.log, dry_run.txt"
