"""Backend parity: the numba CPU kernels against the NumPy reference, on the same counter noise."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kltrain.estimators.importance import combine, posterior_mean_from_partial
from kltrain.kernels import get_backend, resolve
from kltrain.kernels.counter import counter_normals_f32
from kltrain.kernels.layout import Minibatch
from kltrain.nets import MLP
from kltrain.noise import counter_normals, stream_key

REF, CPU = get_backend("numpy"), get_backend("cpu")
TOL = 2e-5  # float32 kernels vs float64 reference


@st.composite
def minibatches(draw):
    """A small MLP on sparse MNIST-like inputs (some rows blank, some repeated)."""
    hidden = draw(st.lists(st.integers(1, 6), max_size=2))
    net = MLP((draw(st.integers(3, 12)), *hidden, draw(st.integers(2, 4))))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    B = draw(st.integers(1, 5))
    X = rng.random((B, net.sizes[0])) * (rng.random((B, net.sizes[0])) < 0.4)
    if B > 2 and draw(st.booleans()):
        X[1] = X[0]      # a repeated image
        X[2] = 0.0       # a blank image
    y = rng.integers(0, net.sizes[-1], size=B)
    params = net.init(rng) + np.float32(0.05) * rng.normal(size=net.n_params).astype(np.float32)
    return Minibatch.build(net, X, y), params


@given(st.integers(0, 2 ** 40), st.lists(st.integers(0, 2 ** 32 - 2), min_size=1, max_size=4),
       st.integers(0, 9), st.integers(1, 40))
def test_numba_normals_match_the_numpy_generator(seed, samples, start, n):
    a = counter_normals_f32(stream_key(seed), np.array(samples, dtype=np.int64), start, n)
    b = counter_normals(seed, samples, n, coord_offset=start)
    np.testing.assert_allclose(a, b, atol=5e-6, rtol=1e-5)


@given(minibatches(), st.floats(1e-3, 0.5), st.integers(0, 1000), st.booleans())
def test_importance_partial_parity(case, tau, seed, antithetic):
    mb, params = case
    a, log_a = CPU.importance_partial(mb, params, tau, seed, 3, 40, antithetic)
    b, log_b = REF.importance_partial(mb, params, tau, seed, 3, 40, antithetic)
    np.testing.assert_allclose(log_a, log_b, atol=TOL)
    x = params.astype(np.float64)
    np.testing.assert_allclose(posterior_mean_from_partial(a, x, tau), posterior_mean_from_partial(b, x, tau),
                               atol=TOL)
    assert a.n == b.n == 37 and abs(a.sum_w ** 2 / a.sum_w2 - b.sum_w ** 2 / b.sum_w2) < 1e-3


@pytest.mark.parametrize("sizes", [(30, 6, 4), (30, 6, 8, 4), (30, 5, 3), (30, 4)],
                         ids=["even", "two-hidden", "odd: strided noise", "no hidden layer"])
def test_importance_partial_with_transposed_tail_noise(sizes):
    """Even fan-outs draw later layers' noise transposed (and undo it in Σwε); parity with the reference."""
    from kltrain.kernels.cpu import tail_transposable
    net = MLP(sizes)
    rng = np.random.default_rng(1)
    mb = Minibatch.build(net, rng.random((5, 30)) * (rng.random((5, 30)) < 0.5), rng.integers(0, sizes[-1], 5))
    params = net.init(rng)
    assert tail_transposable(mb.offsets) == (sizes[1:] != (5, 3))
    a, log_a = CPU.importance_partial(mb, params, 0.3, 2, 0, 100, False)
    b, log_b = REF.importance_partial(mb, params, 0.3, 2, 0, 100, False)
    np.testing.assert_allclose(log_a, log_b, atol=TOL)
    np.testing.assert_allclose(a.sum_w_eps / a.sum_w, b.sum_w_eps / b.sum_w, atol=TOL)


def test_transposed_fill_is_the_block_transposed():
    import numba as nb
    from kltrain.kernels.counter import fill_normals, fill_normals_transposed, sample_key

    @nb.njit(error_model="numpy", fastmath=True)
    def both(key, start, K, F, j):
        plain, t = np.empty(K * F, dtype=np.float32), np.empty((F, K), dtype=np.float32)
        fill_normals(sample_key(key, j), start, plain)
        fill_normals_transposed(sample_key(key, j), start, t)
        return plain.reshape(K, F), t
    for sample in range(20):   # 784–200–10's reduced tail (r·H + H = 4200): the same bits
        plain, t = both(stream_key(3), 4200, 200, 10, sample)
        np.testing.assert_array_equal(t.T, plain)
    plain, t = both(stream_key(3), 30, 7, 4, 0)   # a short row: vector and scalar lanes may differ in the last bit
    np.testing.assert_allclose(t.T, plain, atol=1e-6)
    assert np.abs(both(stream_key(3), 4202, 200, 10, 0)[1].T - both(stream_key(3), 4200, 200, 10, 0)[0]).max() > 1.0


@given(minibatches(), st.integers(0, 1000))
def test_population_losses_parity(case, seed):
    mb, params = case
    np.testing.assert_allclose(CPU.population_losses(mb, params, 0.05, seed, [0, 5, 9]),
                               REF.population_losses(mb, params, 0.05, seed, [0, 5, 9]), atol=TOL)


def test_population_loss_negative_control_other_seed_differs():
    mb, params = Minibatch.build(MLP((6, 3)), np.eye(6)[:3], [0, 1, 2]), MLP((6, 3)).init(0)
    assert np.abs(CPU.population_losses(mb, params, 0.05, 1, [0]) - REF.population_losses(mb, params, 0.05, 2, [0])).max() > 1e-3


@given(minibatches(), st.integers(0, 1000))
def test_cpu_shards_combine_to_the_whole(case, seed):
    mb, params = case
    whole, _ = CPU.importance_partial(mb, params, 0.1, seed, 0, 30, False)
    parts = [CPU.importance_partial(mb, params, 0.1, seed, lo, hi, False)[0] for lo, hi in [(0, 7), (7, 8), (8, 30)]]
    x = params.astype(np.float64)
    np.testing.assert_allclose(posterior_mean_from_partial(combine(parts), x, 0.1),
                               posterior_mean_from_partial(whole, x, 0.1), atol=1e-6)


@given(minibatches(), st.integers(0, 1000))
def test_sgld_chain_parity(case, seed):
    mb, params = case
    eps = 1.0 / (100.0 + np.arange(1, 13))
    a = CPU.sgld_chain(mb, params, params.copy(), 0.05, eps, seed)
    b = REF.sgld_chain(mb, params, params.copy(), 0.05, eps, seed)
    np.testing.assert_allclose(a[0], b[0], atol=TOL)
    np.testing.assert_allclose(a[1], b[1], atol=TOL)


@given(minibatches(), st.integers(0, 1000))
def test_robbins_monro_parity(case, seed):
    mb, params = case
    steps = 0.1 * np.arange(1, 5) ** -0.7
    a, res_a = CPU.robbins_monro(mb, params, 0.05, steps, 3, seed)
    b, res_b = REF.robbins_monro(mb, params, 0.05, steps, 3, seed)
    np.testing.assert_allclose(a, b, atol=TOL)
    assert res_a == pytest.approx(res_b, rel=1e-4, abs=1e-6)


def test_backend_dispatch_errors():
    with pytest.raises(ValueError, match="backend"):
        get_backend("gpu")
    assert resolve("auto") in ("cpu", "cuda")


def test_cuda_backend_without_gpu_is_a_clear_error(monkeypatch):
    import kltrain.kernels as kernels
    monkeypatch.setattr(kernels, "cuda_available", lambda: False)
    monkeypatch.setattr(kernels, "_simulator_on", lambda: False)
    with pytest.raises(RuntimeError, match="GPU"):
        kernels.get_backend("cuda")
    assert kernels.resolve("auto") == "cpu"


@given(minibatches(), st.integers(0, 1000), st.booleans())
def test_dense_and_csr_first_layers_give_the_same_partials(case, seed, antithetic):
    """importance_partials reads X as CSR or, for dense minibatches (the reduced Rᵀ), as dense rows."""
    from kltrain.kernels import cpu
    from kltrain.kernels.cpu_backend import _dense_rows, _first_layer_base
    mb, params = case
    X, kend, _ = _dense_rows(mb)
    assert all(not X[b, kend[b]:].any() and (kend[b] == 0 or X[b, kend[b] - 1] != 0) for b in range(len(X)))
    out = [cpu.importance_partials(params, 0.2, stream_key(seed), 0, 30, antithetic, _first_layer_base(mb, params),
                                   mb.y, mb.indptr, mb.idx, mb.val, mb.offsets, 2, X, kend, dense)
           for dense in (False, True)]
    np.testing.assert_allclose(out[0][2], out[1][2], atol=1e-5)      # log weights
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-4, atol=1e-5)   # Σ w ε


@given(st.integers(0, 2 ** 16), st.booleans())
def test_reduced_minibatch_takes_the_dense_path_and_matches_the_reference(seed, antithetic):
    from kltrain.kernels.cpu_backend import _dense_rows
    from kltrain.nets.projected import reduce_minibatch
    rng = np.random.default_rng(seed)
    net = MLP((30, 5, 3))
    X = rng.random((6, 30)) * (rng.random((6, 30)) < 0.3)
    red = reduce_minibatch(Minibatch.build(net, X, rng.integers(0, 3, 6)))
    assert _dense_rows(red.minibatch)[2]
    params = red.reduce(net.init(rng))
    a, log_a = CPU.importance_partial(red.minibatch, params, 0.1, seed, 0, 50, antithetic)
    b, log_b = REF.importance_partial(red.minibatch, params, 0.1, seed, 0, 50, antithetic)
    np.testing.assert_allclose(log_a, log_b, atol=TOL)
    x = params.astype(np.float64)
    np.testing.assert_allclose(posterior_mean_from_partial(a, x, 0.1), posterior_mean_from_partial(b, x, 0.1),
                               atol=TOL)


@pytest.mark.parametrize("B,C,spread", [(1, 2, 1.0), (7, 10, 30.0), (600, 10, 3.0), (20, 3, 200.0)])
def test_cross_entropy_matches_float64(B, C, spread):
    """Polynomial float32 exp and one log of a flushed product (B = 600 overflows without the flush)."""
    from kltrain.kernels.cpu_mlp import cross_entropy
    from kltrain.nets import softmax_cross_entropy
    rng = np.random.default_rng(B)
    z = (spread * rng.normal(size=(B, C))).astype(np.float32)
    y = rng.integers(0, C, B)
    want = softmax_cross_entropy(z.astype(np.float64), y)[0]
    got = cross_entropy(z, y, np.empty(B * C, np.float32))
    assert np.isfinite(got) and got == pytest.approx(want, rel=2e-6, abs=2e-6)
    assert cross_entropy(z, (y + 1) % C, np.empty(B * C, np.float32)) != pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("B,fi,fo", [(1, 3, 1), (7, 9, 10), (6, 200, 11), (3, 5, 4), (2, 17, 5)])
def test_dense_t_matches_matmul(B, fi, fo):
    from kltrain.kernels.cpu_mlp import dense_t
    rng = np.random.default_rng(fi)
    act, W, bias = (rng.normal(size=s).astype(np.float32) for s in ((B, fi), (fi, fo), fo))
    out = np.full((B, fo), np.nan, np.float32)
    dense_t(act, np.ascontiguousarray(W.T), bias, out)
    np.testing.assert_allclose(out, act.astype(np.float64) @ W + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x", [0.0, -1e-8, -0.5, -1.0, -10.0, -50.0, -86.0, -87.5, -200.0])
def test_exp_f32(x):
    import numba as nb
    from kltrain.kernels.cpu_mlp import exp_f32
    got = nb.njit(lambda v: exp_f32(v))(np.float32(x))
    assert got == pytest.approx(np.exp(np.float64(np.float32(x))), rel=3e-7, abs=2e-38)


@pytest.mark.parametrize("start,extra", [(0, 1001), (3, 1001), (1, 0), (5, -1), (2, 1)])
def test_long_rows_split_into_chunks_give_the_same_normals(start, extra):
    """counter_normals_f32 splits long rows over threads; the values are those of one serial fill."""
    import numba as nb
    from kltrain.kernels.counter import NORMALS_CHUNK, fill_normals, sample_key
    n = 2 * NORMALS_CHUNK + extra
    key = stream_key(5)
    @nb.njit(error_model="numpy", fastmath=True)   # one fill per row, as before the split
    def rows(key, samples, start, n):
        out = np.empty((samples.size, n), dtype=np.float32)
        for r in range(samples.size):
            fill_normals(sample_key(key, samples[r]), start, out[r])
        return out
    want = rows(key, np.array([7, 2 ** 32 - 1]), start, n)
    np.testing.assert_array_equal(counter_normals_f32(key, np.array([7, 2 ** 32 - 1]), start, n), want)
    np.testing.assert_allclose(want[0, -50:], counter_normals(5, [7], n, coord_offset=start)[0, -50:], atol=5e-6)


@pytest.mark.parametrize("start", [0, 1, 4098])
def test_two_pass_fill_gives_the_bits_of_short_fills(start):
    """fill_normals hashes long rows (SPLIT_FROM pairs on) in a pass of its own; the bits are unchanged."""
    import numba as nb
    from kltrain.kernels.counter import FILL_CHUNK, SPLIT_FROM, fill_normals, sample_key
    n, piece = 4 * FILL_CHUNK + 37, 2 * SPLIT_FROM - 6      # long: two-pass; pieces: one loop
    key = stream_key(11)

    # pieces after the first start at even coordinates: an odd start's lone sine is computed
    # outside the vector loop, which may differ in the last bit (as counter_normals_f32 notes)
    bounds = np.array([0, *range(piece - (start & 1), n, piece), n])

    @nb.njit(error_model="numpy", fastmath=True)
    def fills(key, start, n, bounds):
        whole, parts = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
        fill_normals(sample_key(key, 3), start, whole)
        for i in range(bounds.size - 1):
            fill_normals(sample_key(key, 3), start + bounds[i], parts[bounds[i]:bounds[i + 1]])
        return whole, parts
    whole, parts = fills(key, start, n, bounds)
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_allclose(whole, counter_normals(11, [3], n, coord_offset=start)[0], atol=5e-6)
    assert np.abs(whole - counter_normals(11, [4], n, coord_offset=start)[0]).max() > 1.0   # another sample


def test_parallel_wave_fold_equals_serial_folding():
    """fold_wave_parallel (large d) gives the serial fold_block's totals; blocks without weights are skipped."""
    from kltrain.kernels.cpu import FOLD_CHUNK, fold_block, fold_wave_parallel
    rng = np.random.default_rng(3)
    n, d = 5, 3 * FOLD_CHUNK + 17
    stats = np.column_stack([rng.normal(size=n) * 5, rng.random(n) + 0.5, rng.random(n) + 0.1])
    stats[2] = [-np.inf, 0.0, 0.0]
    acc = rng.normal(size=(n, d)).astype(np.float32)
    acc[2] = 0.0
    want = (np.array([-np.inf, 0.0, 0.0]), np.zeros(d))
    for i in range(n):
        fold_block(stats[i], acc[i], *want)
    got = (np.array([-np.inf, 0.0, 0.0]), np.zeros(d))
    fold_wave_parallel(stats, acc, n, *got)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-15)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)
    stats[4, 0] = stats[:, 0].max() + 3.0               # negative control: another weight changes the sum
    other = (np.array([-np.inf, 0.0, 0.0]), np.zeros(d))
    fold_wave_parallel(stats, acc, n, *other)
    assert np.abs(other[1] - want[1]).max() > 1e-3
