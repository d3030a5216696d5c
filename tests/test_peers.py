"""Entropy-SGD and SAM (kltrain.studies.peers) against one step computed by hand, in plain NumPy, on a tiny net.

The oracle re-implements the tiny net's loss and gradient (not MLP.loss_and_grad),
the update formulas (Chaudhari et al. 2017 Alg. 1 / optim.py; Foret et al. 2021 eqs. 2–3)
and the noise stream (the float64 counter generator of kltrain.noise, not the numba one).
Each test also checks a negative control: a deliberately wrong hand step must *not* match.
"""

import numpy as np
import pytest

from kltrain.nets.netloss import MinibatchLoss, TrainingSet
from kltrain.nets import MLP
from kltrain.noise import counter_normals, draw_seed
from kltrain.studies.peers import SAM, EntropySGD, EntropySGDState
from kltrain.studies.training import TrainConfig

SIZES = (5, 4, 3)


def _data(n=12, seed=0):
    r = np.random.default_rng(seed)
    X = np.maximum(r.normal(size=(n, SIZES[0])), 0).astype(np.float32)  # some zero "pixels"
    return X, r.integers(0, SIZES[-1], size=n)


def _params(seed=1):
    return (MLP(SIZES).init(np.random.default_rng(seed)) + 0.05).astype(np.float32)


def hand_grad(p, X, y):
    """∇ of the mean softmax cross-entropy of a 5–4–3 ReLU net, written out independently."""
    p = np.asarray(p, np.float64)
    W1, b1 = p[:20].reshape(5, 4), p[20:24]
    W2, b2 = p[24:36].reshape(4, 3), p[36:39]
    z1 = X @ W1 + b1
    h = np.maximum(z1, 0)
    z2 = h @ W2 + b2
    prob = np.exp(z2 - z2.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    dz2 = (prob - np.eye(3)[y]) / len(y)
    dh = dz2 @ W2.T * (z1 > 0)
    return np.concatenate([(X.T @ dh).ravel(), dh.sum(0), (h.T @ dz2).ravel(), dz2.sum(0)])


def hand_esgd(x, buf, k, rng, X, y, batch, cfg, *, alpha=None, nesterov=True):
    """One Entropy-SGD update by hand; the rng is consumed as the rule does (seed, then minibatches)."""
    alpha = cfg.alpha if alpha is None else alpha
    seed = draw_seed(rng)
    gamma = cfg.gamma * (1 + cfg.scoping) ** (k + 1)
    x = np.asarray(x, np.float64)
    xp, mu, mbuf = x.copy(), x.copy(), np.zeros_like(x)
    idx = batch
    for i in range(cfg.inner_steps):
        if i > 0:
            idx = rng.choice(len(y), size=len(batch), replace=False)
        g = hand_grad(xp, X[idx], y[idx])
        mbuf = cfg.momentum * mbuf + g
        d = g + cfg.momentum * mbuf if nesterov else mbuf
        xi = counter_normals(seed, [i], x.size)[0]
        xp = xp - cfg.inner_lr * (d + gamma * (xp - x)) + cfg.noise * np.sqrt(2 * cfg.inner_lr) * xi
        mu = alpha * mu + (1 - alpha) * xp
    g_out = x - mu
    buf = cfg.momentum * buf + g_out
    return x - cfg.learning_rate * (g_out + cfg.momentum * buf if nesterov else buf)


def _tiny_training_set():
    X, y = _data()
    return X, y, TrainingSet(MLP(SIZES), X, y, batch_size=4, backend="cpu")


# exaggerated noise, scope and scoping so that every term moves the result
CFG = EntropySGD(learning_rate=0.3, inner_steps=4, inner_lr=0.2, gamma=0.5, scoping=0.1, noise=0.3)


def test_entropy_sgd_matches_a_hand_step():
    X, y, ts = _tiny_training_set()
    x = _params()
    buf = np.random.default_rng(7).normal(size=x.size).astype(np.float32) * 0.1   # a warm momentum buffer
    batch = ts.sample(np.random.default_rng(3))
    batch_idx = np.random.default_rng(3).choice(len(y), size=4, replace=False)
    got, state, info = CFG.step(np.random.default_rng(11), EntropySGDState(buf.copy()), batch, x, 2)
    want = hand_esgd(x, buf.astype(np.float64), 2, np.random.default_rng(11), X, y, batch_idx, CFG)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    assert info.gamma == pytest.approx(0.5 * 1.1 ** 3)
    wrong = hand_esgd(x, buf.astype(np.float64), 2, np.random.default_rng(11), X, y, batch_idx, CFG, alpha=0.5)
    assert np.abs(got - wrong).max() > 1e-3            # negative control: α is visible
    plain = hand_esgd(x, buf.astype(np.float64), 2, np.random.default_rng(11), X, y, batch_idx, CFG,
                      nesterov=False)
    assert np.abs(got - plain).max() > 1e-3            # ... and so is Nesterov


def test_entropy_sgd_noise_is_epsilon_sqrt_2_lr():
    """With f ≡ 0, γ = 0, one inner step and no momentum, x − μ = −(1−α)·ε√(2η′)·ξ exactly."""
    from kltrain.losses import FunctionLoss
    flat = FunctionLoss(lambda x: 0.0, lambda x: np.zeros_like(x), dim=50_000)
    rule = EntropySGD(learning_rate=1.0, inner_steps=1, inner_lr=0.1, gamma=0.0, momentum=0.0)
    x = np.zeros(50_000)
    x_next, _, _ = rule.step(np.random.default_rng(0), rule.init(flat, x), flat, x, 0)
    noise = x_next / ((1 - rule.alpha))                  # x_next = 0 − 1·(0 − μ) = μ = (1−α)·noise
    assert np.std(noise) == pytest.approx(1e-4 * np.sqrt(0.2), rel=0.02)   # 2% ≈ 6 SE of a std at n = 5·10⁴
    assert not np.std(noise) == pytest.approx(1e-4 * np.sqrt(0.1), rel=0.02)   # control: std ε√η′


def hand_sam(x, X, y, rho, lr):
    g = hand_grad(x, X, y)
    return np.asarray(x, np.float64) - lr * hand_grad(x + rho * g / np.linalg.norm(g), X, y)


def test_sam_matches_a_hand_step():
    X, y = _data()
    loss = MinibatchLoss(MLP(SIZES), X[:6], y[:6], backend="cpu")
    x = _params()
    rule = SAM(learning_rate=0.5, rho=0.5)
    got, _, info = rule.step(None, None, loss, x, 0)
    want = hand_sam(x, X[:6], y[:6], 0.5, 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    sgd = np.asarray(x, np.float64) - 0.5 * hand_grad(x, X[:6], y[:6])
    assert np.abs(got - sgd).max() > 1e-3                # negative control: the ascent step matters
    assert info.grad_norm == pytest.approx(np.linalg.norm(hand_grad(x, X[:6], y[:6])), rel=1e-4)


@pytest.mark.parametrize("bad", [dict(inner_steps=0), dict(alpha=1.0), dict(momentum=-0.1), dict(noise=-1.0),
                                 dict(learning_rate=0.0)])
def test_entropy_sgd_refuses_bad_settings(bad):
    with pytest.raises(ValueError):
        EntropySGD(**bad)


def test_sam_refuses_bad_rho():
    with pytest.raises(ValueError):
        SAM(rho=0.0)


@pytest.mark.parametrize("algo,label", [("entropy-sgd", "Entropy-SGD"), ("sam", "SAM")])
def test_training_config_selects_the_peers(algo, label):
    cfg = TrainConfig(algo)
    assert cfg.label == label
    assert type(cfg.update_rule()).__name__ == {"entropy-sgd": "EntropySGD", "sam": "SAM"}[algo]


def test_peers_share_the_initialisation_and_minibatches_and_learn():
    from kltrain.studies.training import load_data, train
    data = load_data(TrainConfig("sgd", n_test=300))
    runs = {algo: train(TrainConfig(algo, n_updates=n, eval_every=n, n_test=300, backend="cpu"), data=data,
                        progress=False) for algo, n in (("sgd", 2), ("entropy-sgd", 10), ("sam", 40))}
    assert len({r.test_accuracy[0] for r in runs.values()}) == 1      # identical initial network
    assert len({r.minibatch_loss[0] for r in runs.values()}) == 1     # same first minibatch
    assert runs["entropy-sgd"].test_accuracy[-1] > 0.4                # chance is 0.1
    assert runs["sam"].test_accuracy[-1] > 0.25
