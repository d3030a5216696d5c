#!/usr/bin/env bash
# The lent-GPU check as one prepared script (issues 13, 21): run it from the repository root on the GPU machine.
#
#   bash validation/gpu_session.sh OUT_DIR [SWEEP_SECONDS]
#   STEPS="compile tests resident legacy occupancy sweep" bash validation/gpu_session.sh OUT_DIR 200
#
# Steps (STEPS picks them, in this order; the default, "compile tests resident", takes at most 8 minutes):
#   compile   the compile tier's ptxas report for sm_90 (every kernel, the resident ones included);
#   tests     the real-GPU pytest tier (-m cuda): old kernels and the resident updates against the CPU;
#   resident  python -m validation.gpu_resident --store: issue 21's table (reduced IS J = 10³, 10⁵, SGD beside
#             the PyTorch peer; SGLD 10³ steps, HR M = J = 30), the batched Table 6.1 (5 seeds × 4 algorithms in
#             one set of launches, beside one at a time), each kernel's share of an IS update,
#             resources, Nsight Compute's achieved occupancy -> OUT_DIR/gpu-resident.json, and
#             OUT_DIR/gpu-<device>.json = validation/data's file plus this run (copy it back and commit it);
#   legacy    python -m validation.gpu: issue 13's parity, benchmark and reduced-IS breakdown -> OUT_DIR/gpu.json;
#   occupancy Nsight Compute on issue 13's kernels;
#   sweep     the §6.4 IS sweep (J = 10 … 10⁵, 5 seeds, seed-major) for at most SWEEP_SECONDS.
# Every step has its own time limit, so a slow or failing step cannot take the others' results.
# Wheels in .whl/ (NumPy 2.4 for numba-cuda 0.30.4) are installed first.
set -u
OUT=${1:?usage: gpu_session.sh OUT_DIR [SWEEP_SECONDS]}
SWEEP=${2:-200}
STEPS=${STEPS:-compile tests resident}
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
wants() { case " $STEPS " in *" $1 "*) return 0;; *) return 1;; esac; }

if wants compile; then
  echo "== compile tier (sm_90)"
  timeout 90 python3 -m kltrain.kernels.cuda_compile --cc 90 2>&1 | tee "$OUT/compile.txt"
fi

if wants tests; then
  echo "== real-GPU tests"
  timeout 120 python3 -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py tests/test_cuda_resident.py 2>&1 \
    | tail -15
fi

if wants resident; then
  echo "== issue 21: the resident updates beside the PyTorch peer"
  timeout 270 python3 -m validation.gpu_resident --out "$OUT" --store "$OUT" --row-seconds 60 2>&1 | tee "$OUT/resident.log"
  echo "copy $OUT/gpu-<device>.json over validation/data/ and commit it"
fi

if wants legacy; then
  echo "== issue 13: check and benchmark"
  timeout 240 python3 -m validation.gpu --out "$OUT" 2>&1 | tee "$OUT/gpu.log"
fi

if wants occupancy; then
  echo "== achieved occupancy of issue 13's kernels (Nsight Compute)"
  cat > /tmp/ncu_driver.py <<'PY'
from validation.gpu import _problem
from kltrain.kernels import get_backend
from kltrain.nets.projected import projected_importance_update
gpu = get_backend("cuda")
net, mb, p = _problem(False)
projected_importance_update(gpu, mb, p, 0.01, 1, 1000)
gpu.importance_partial(mb, p, 0.01, 1, 0, 1000, False)
gpu.loss_and_grad(mb, p)
PY
  timeout 90 ncu --target-processes all --kernel-name regex:'log_weights|accumulate|loss_grad|normals' \
    --metrics sm__warps_active.avg.pct_of_peak_sustained_active,sm__maximum_warps_per_active_cycle_pct,gpu__time_duration.sum \
    python3 /tmp/ncu_driver.py > "$OUT/ncu.txt" 2>&1 || echo "ncu did not finish (exit $?)"
  grep -E "log_weights|accumulate|loss_grad|normals|warps|duration" "$OUT/ncu.txt" | cut -c1-160 | head -40
fi

if wants sweep; then
  echo "== IS sweep (at most ${SWEEP} s)"
  timeout "$SWEEP" python3 -m validation.gpu --out "$OUT" --sweep-only --seeds 5 2>&1 | tee "$OUT/sweep.log" | tail -40
  tar czf "$OUT/is-sweep-runs.tgz" -C "$OUT" is-sweep-runs 2>/dev/null && rm -rf "$OUT/is-sweep-runs"
fi
ls -la "$OUT"
