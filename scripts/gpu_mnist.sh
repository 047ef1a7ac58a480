#!/usr/bin/env bash
# Two MNIST runs on a GPU machine of BBB 2x1200 (mixture prior, local
# reparameterisation, cosine learning rate, CUDA graphs) side by side, batch 128 and batch 512.
# Usage: DATA=/folder/with/mnist.npz OUT=/results scripts/gpu_mnist.sh
# Writes $OUT/mnist_b128.json, $OUT/mnist_b512.json and $OUT/log.txt.
set -u
OUT=${OUT:?set OUT to a results folder}
DATA=${DATA:?set DATA to the folder holding mnist.npz}
BUDGET=${MNIST_BUDGET_MIN:-3.0}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
echo "=== MNIST, two runs side by side, ${BUDGET} min each ($(date +%T))"
common=(--dataset mnist --model bbb --hidden 1200 1200 --prior mixture --data-dir "$DATA"
    --preprocessing paper --rho0 -5 --device cuda --estimator local --lr-schedule cosine
    --compile reduce-overhead --eval-every 10 --eval-samples 100 --budget-min "$BUDGET")
limit=$(python3 -c "print(int(60 * $BUDGET + 40))")
timeout "$limit" python3 scripts/mnist_run.py "${common[@]}" --batch-size 128 --lr 1e-3 \
    --epochs 150 --out "$OUT/mnist_b128.json" > /tmp/mnist_b128.log 2>&1 &
pids=($!)
timeout "$limit" python3 scripts/mnist_run.py "${common[@]}" --batch-size 512 --lr 2e-3 \
    --epochs 250 --out "$OUT/mnist_b512.json" > /tmp/mnist_b512.log 2>&1 &
pids+=($!)
wait "${pids[@]}"
for f in b128 b512; do echo "--- $f"; grep -v "^ " "/tmp/mnist_$f.log" | tail -25; done
echo "=== done ($(date +%T))"
