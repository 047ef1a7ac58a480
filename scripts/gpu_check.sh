#!/usr/bin/env bash
# One prepared run on a GPU machine: the bench (eager, compiled, TF32 prediction) and MNIST
# runs of BBB 2x1200 with the mixture prior, each part under its own time limit.
#
# Usage (on the GPU machine, from the repository root):
#   DATA=/path/with/mnist.npz OUT=/results scripts/gpu_check.sh
# Every result lands in $OUT: bench_*.json, mnist_*.json and log.txt (everything printed).
# MNIST_BUDGET_MIN (default 2.5) bounds each MNIST run's training time; the three runs share the
# GPU (they are launch-bound at batch 128), so their times are upper bounds for a run alone.
set -u
OUT=${OUT:?set OUT to a results folder}
DATA=${DATA:?set DATA to the folder holding mnist.npz}
BUDGET=${MNIST_BUDGET_MIN:-2.5}
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1

part() { echo; echo "=== $* ($(date +%T))"; }

part environment
nvidia-smi -L
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"

part "bench, eager, float32"
timeout 90 python3 -m bbb_core bench --device cuda --json "$OUT/bench_eager.json"

part "bench, torch.compile default, 784-1200-1200-10, batch 128"
timeout 100 python3 -m bbb_core bench --device cuda --compile default --hidden 1200 1200 \
    --batch 128 --parts train_step --json "$OUT/bench_compile.json"

part "bench, torch.compile reduce-overhead (CUDA graphs), batch 128"
timeout 80 python3 -m bbb_core bench --device cuda --compile reduce-overhead --hidden 1200 1200 \
    --batch 128 --parts train_step --json "$OUT/bench_graphs.json"

part "bench, prediction with TF32 matrix products"
timeout 40 python3 -m bbb_core bench --device cuda --matmul-precision high --hidden 1200 1200 \
    --parts predict --json "$OUT/bench_tf32.json"

part "MNIST, three runs side by side, ${BUDGET} min each"
common=(--dataset mnist --model bbb --hidden 1200 1200 --prior mixture --data-dir "$DATA"
    --preprocessing paper --batch-size 128 --rho0 -5 --lr 1e-3 --device cuda --eval-every 5
    --eval-samples 100 --budget-min "$BUDGET")
limit=$(python3 -c "print(int(60 * $BUDGET + 75))")
timeout "$limit" python3 scripts/mnist_run.py "${common[@]}" --estimator local --epochs 300 \
    --compile reduce-overhead --out "$OUT/mnist_local_const.json" > /tmp/mnist_a.log 2>&1 &
pids=($!)
timeout "$limit" python3 scripts/mnist_run.py "${common[@]}" --estimator local --epochs 80 \
    --lr-schedule cosine --compile default --out "$OUT/mnist_local_cos.json" > /tmp/mnist_b.log 2>&1 &
pids+=($!)
timeout "$limit" python3 scripts/mnist_run.py "${common[@]}" --estimator reparam --epochs 80 \
    --lr-schedule cosine --compile default --out "$OUT/mnist_reparam_cos.json" > /tmp/mnist_c.log 2>&1 &
pids+=($!)
wait "${pids[@]}"  # not a bare wait: that would also wait for the tee behind the log
for f in a b c; do echo "--- mnist $f"; grep -v "^ " "/tmp/mnist_$f.log" | tail -40; done
part done
