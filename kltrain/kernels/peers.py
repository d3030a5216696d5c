"""numba kernel of Entropy-SGD's inner SGLD step (kltrain.studies.peers): one fused pass over the parameters.

Per inner step the NumPy form reads and writes five d-vectors in about eight
passes and draws d normals with the global-state generator (≈ 1.5 ms for
d = 159,010 on one core); fused, with the counter-based normals of
:mod:`kltrain.kernels.counter` (noise sample i of the update's stream), it is
one pass.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .counter import fill_normals, sample_key
from .cpu_mlp import JIT

BLOCK = 2048  # coordinates whose normals are generated together (vectorised)


@nb.njit(**JIT)
def esgd_inner_step(chain, x, mu, buf, grad, lr, mom, nesterov, gamma, noise_std, alpha, key, i):
    """In place, coordinate-wise (Chaudhari et al. 2017, Alg. 1 lines 4–6; optim.py's inner loop):

        buf ← m·buf + g;  d = g + m·buf (Nesterov) or buf
        x′  ← x′ − η′(d + γ(x′ − x)) + noise_std·ξ_i      (noise_std = ε√(2η′))
        μ   ← αμ + (1 − α)x′
    """
    skey = sample_key(key, i)
    t = chain.dtype.type
    m, lr_, gam, sd, a = t(mom), t(lr), t(gamma), t(noise_std), t(alpha)
    keep_g, keep_b = (t(1.0), m) if nesterov else (t(0.0), t(1.0))  # d = keep_g·g + keep_b·buf, branch-free
    n = chain.size
    z = np.empty(BLOCK, dtype=np.float32)
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        fill_normals(skey, lo, z[:hi - lo])
        for c in range(lo, hi):
            b = m * buf[c] + grad[c]
            buf[c] = b
            d = keep_g * grad[c] + keep_b * b
            w = chain[c] - lr_ * (d + gam * (chain[c] - x[c])) + sd * z[c - lo]
            chain[c] = w
            mu[c] = a * mu[c] + (t(1.0) - a) * w
