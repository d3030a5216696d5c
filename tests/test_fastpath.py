"""The fast-path protocol: one argument order, one dispatch, and agreement with the references."""

import numpy as np
import pytest

import kltrain
from kltrain.estimators import SGLD, ImportanceSampling, RobbinsMonro
from kltrain.fastpath import FastPaths, fast_path
from kltrain.kernels.numpy_backend import NetLoss
from kltrain.nets.netloss import MinibatchLoss
from kltrain.nets import MLP
from toyproblems import Quadratic

QUAD = Quadratic(A=np.diag([1.0, 3.0]), center=[0.0, 0.0])


class Recording(Quadratic):
    """A quadratic that offers every fast path and records the arguments it is called with."""

    calls: list

    def _record(self, name, *args):
        self.calls.append((name, args))
        return args[0]  # x: a recognisable answer

    def importance_partial(self, x, tau, seed, start, stop, antithetic):
        from kltrain.estimators.importance import importance_partial
        self.calls.append(("importance_partial", (x, tau, seed, start, stop, antithetic)))
        return importance_partial(QUAD, x, tau, seed, start, stop, antithetic)

    def projected_importance_update(self, x, tau, seed, n_samples, antithetic):
        return self._record("projected_importance_update", x, tau, seed, n_samples, antithetic), None

    def sgld_chain(self, x, tau, seed, start, eps, noise_scale, rng):
        return self._record("sgld_chain", x, tau, seed, start, eps, noise_scale, rng), x, 0.0

    def projected_sgld_chain(self, x, tau, seed, start, eps, noise_scale, rng):
        return self._record("projected_sgld_chain", x, tau, seed, start, eps, noise_scale, rng), x, 0.0

    def robbins_monro(self, x, tau, seed, steps, n_samples):
        return self._record("robbins_monro", x, tau, seed, steps, n_samples), 0.0

    def projected_robbins_monro(self, x, tau, seed, steps, n_samples):
        return self._record("projected_robbins_monro", x, tau, seed, steps, n_samples), 0.0


def test_every_estimator_calls_its_fast_path_with_x_tau_seed_first():
    loss = Recording(A=np.diag([1.0, 3.0]), center=[0.0, 0.0])
    object.__setattr__(loss, "calls", [])
    x = np.array([0.3, -0.2])
    for projected in (False, True):
        kltrain.posterior_mean(loss, x, 0.5, estimator=ImportanceSampling(8, projected=projected), rng=0)
        kltrain.posterior_mean(loss, x, 0.5, estimator=SGLD(8, projected=projected), rng=0)
        kltrain.minimize_heat(loss, x, 0.5, 1, estimator=RobbinsMonro(3, 2, projected=projected), rng=0)
    names = [name for name, _ in loss.calls]
    assert names == ["importance_partial", "sgld_chain", "robbins_monro", "projected_importance_update",
                     "projected_sgld_chain", "projected_robbins_monro"]
    for _, args in loss.calls:
        np.testing.assert_array_equal(args[0], x)
        assert args[1] == 0.5 and isinstance(args[2], int)
    assert set(names) <= set(FastPaths.__dict__)


def test_projected_without_a_fast_path_is_a_type_error():
    for est in (ImportanceSampling(8, projected=True), SGLD(8, projected=True)):
        with pytest.raises(TypeError, match="projected=True"):
            kltrain.posterior_mean(QUAD, np.zeros(2), 0.5, estimator=est, rng=0)
    with pytest.raises(TypeError, match="projected=True"):
        kltrain.minimize_heat(QUAD, np.zeros(2), 0.5, 1, estimator=RobbinsMonro(3, 2, projected=True), rng=0)


def test_unknown_fast_path_names_are_refused():
    assert fast_path(QUAD, "sgld_chain") is None
    with pytest.raises(AttributeError):
        fast_path(QUAD, "sgld_chains")


@pytest.mark.parametrize("make", [lambda: ImportanceSampling(30, projected=False), lambda: SGLD(20, projected=False),
                                  lambda: RobbinsMonro(4, 3, projected=False)])
def test_mlp_fast_paths_equal_the_references_on_a_plain_loss(make):
    """MinibatchLoss (numpy backend) vs the same minibatch hidden behind the bare loss protocol."""
    rng = np.random.default_rng(0)
    net = MLP([784, 6, 10])
    X, y = rng.random((5, 784)).astype(np.float32), rng.integers(0, 10, 5)
    fast = MinibatchLoss(net, X, y, backend="numpy")
    plain = NetLoss(fast.batch)
    p = net.init(1).astype(np.float64)
    est = make()
    scheme = kltrain.minimize_heat if est.kind == "prox" else kltrain.minimize_local_entropy
    a, b = scheme(fast, p, 0.01, 2, estimator=est, rng=3), scheme(plain, p, 0.01, 2, estimator=est, rng=3)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert np.abs(a[-1] - a[0]).max() > 1e-6  # the update moved: the check can fail


@pytest.mark.parametrize("name", ["importance.importance_partial", "sgld.sgld_chain", "robbins_monro.robbins_monro"])
def test_each_reference_reads_beside_its_pseudocode(name):
    """One function per algorithm, about a screen long, with no fast-path dispatch inside it."""
    import importlib
    import inspect
    module, fn = name.split(".")
    source = inspect.getsource(getattr(importlib.import_module(f"kltrain.estimators.{module}"), fn))
    assert len(source.splitlines()) <= 30
    assert "fast_path" not in source and "getattr" not in source and "projected" not in source


def looked_up_names() -> set[str]:
    """Every string literal the package passes to getattr/hasattr on a loss, plus Exact's closed forms."""
    import ast
    from pathlib import Path

    from kltrain.estimators.exact import _QUANTITIES
    names = set(_QUANTITIES)
    for path in (Path(kltrain.__file__).parent).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr")
                    and isinstance(node.args[0], ast.Name) and node.args[0].id in ("loss", "batch")
                    and isinstance(node.args[1], ast.Constant)):
                names.add(node.args[1].value)
    return names


def test_every_optional_loss_method_is_in_a_documented_protocol():
    from kltrain.losses import ClosedForms, Loss, OptionalLoss

    def members(proto):
        return {n for n in vars(proto) if not n.startswith("_")} | set(getattr(proto, "__annotations__", {}))
    documented = members(Loss) | members(OptionalLoss) | members(ClosedForms) | members(FastPaths)
    names = looked_up_names()
    assert {"values", "grads", "resample", "dim", "length_scale", "posterior_mean"} <= names  # the scan works
    assert names <= documented, names - documented
