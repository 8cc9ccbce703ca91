"""jaxspec.ufm against its oracles: the public check values of
[math §6](https://jaxspec.github.io/jaxspec/math/#s6), jax.hessian, independent numpy implementations, exact
collapse identities, and gradient descent reaching the analytic optimum."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspec import InputError, hessian, ufm
from tests.conftest import PRINTED_6_DECIMALS, assert_close, run_cli

# [math §6](https://jaxspec.github.io/jaxspec/math/#s6): K=3, n=40, L=5, lam_W = lam_H = 1e-2 (d >= K
# arbitrary).
CHECK = {"gamma": 0.942277, "loss": 0.164838, "outlier": 0.163243, "gram": 1.813021}
# Gradient descent stopped with its loss within 1e-12 of the optimum: the loss is quadratic around it, so the
# parameters (and what is computed from them) are only within ~sqrt(1e-12) = 1e-6 of the optimum's.
PARAMS_FROM_LOSS_GAP = 1e-5


@pytest.fixture(scope="module")
def check_model():
    return ufm.make_ufm(3, 40, 5, 1e-2, width=4, dtype="float64")


def random_basis(rng, d, k):
    return np.linalg.qr(rng.standard_normal((d, k)))[0]


# --- closed form --------------------------------------------------------------------------------------------


def test_public_check_values(check_model):
    opt = ufm.collapsed_optimum(check_model)
    assert round(opt.gamma, 6) == CHECK["gamma"]
    assert round(opt.loss, 6) == CHECK["loss"]
    assert round(opt.outlier, 6) == CHECK["outlier"]
    assert round(opt.weight_gram, 6) == CHECK["gram"]
    assert opt.outlier_multiplicity == 9 and opt.gram_multiplicity == 3
    assert_close(opt.weight_gram, (1e-2 / 1e-2) * 40 * opt.s2, scale=3e-3)

    params = ufm.collapsed_params(check_model)
    assert_close(float(ufm.loss(check_model, params)), opt.loss, scale=0.03)
    # Layer-wise outliers by Lanczos on Hessian-vector products: 9 per layer, then the (zero) bulk.
    eigs = np.asarray(ufm.layer_top_eigenvalues(check_model, params, 10))
    assert_close(eigs[:, :9], opt.outlier, scale=0.3)
    assert_close(eigs[:, 9], 0.0)
    assert_close(ufm.gram_eigenvalues(check_model, params), opt.weight_gram, scale=0.3)
    feature_gram = ufm.feature_gram_eigenvalues(check_model, params)
    assert_close(feature_gram, opt.feature_gram, scale=0.3)


@pytest.mark.parametrize(
    "K, n, L, lam_w, lam_h",
    [(3, 40, 5, 1e-2, 1e-2), (2, 3, 1, 0.1, 0.05), (10, 100, 12, 1e-3, 1e-5), (4, 8, 3, 1e-9, 1e-9)],
)
def test_gamma_solves_its_equation_at_the_root_nearest_one(K, n, L, lam_w, lam_h):
    opt = ufm.collapsed_optimum(ufm.make_ufm(K, n, L, lam_w, lam_h, dtype="float64"))
    gamma = opt.gamma
    assert ufm.solve_gamma(K, n, L, lam_w, lam_h) == gamma
    lhs = (L - 1) * math.log(gamma) + (L + 1) * math.log(opt.one_minus_gamma)
    rhs = L * math.log(lam_w * K) + math.log(lam_h * K * n)
    assert_close(lhs, rhs)
    assert (L - 1) / (2 * L) < gamma < 1


def test_no_collapsed_optimum_is_an_input_error():
    with pytest.raises(InputError, match="no collapsed optimum"):
        ufm.solve_gamma(3, 40, 5, 0.5, 0.5)
    with pytest.raises(InputError, match="no collapsed optimum"):
        ufm.solve_gamma(3, 40, 1, 0.5, 0.5)
    with pytest.raises(InputError, match="width d"):
        ufm.make_ufm(3, 4, 2, 1e-2, width=2)
    with pytest.raises(InputError, match="lam_h"):
        ufm.make_ufm(3, 4, 2, 1e-2, lam_h=0.0)


def test_collapsed_params_are_a_critical_point_for_any_frame(rng):
    model = ufm.make_ufm(3, 5, 4, 2e-2, width=6, dtype="float64")
    for basis in (None, random_basis(rng, 6, 3)):
        params = ufm.collapsed_params(model, basis)
        grads = jax.jit(jax.grad(lambda p: ufm.loss(model, p)))(params)
        scale = max(float(jnp.abs(x).max()) for x in jax.tree.leaves(params))
        assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) < 1e-13 * scale
        assert_close(ufm.predict(model, params), ufm.collapsed_optimum(model).gamma * ufm.targets(model))


# --- curvature ----------------------------------------------------------------------------------------------


def per_layer(model, fn):
    """``fn(layer)`` for the hidden layers (vmapped) and the head, in one jitted call: ``(hidden, head)``."""
    hidden = lambda: jax.vmap(fn)(jnp.arange(model.depth - 1))  # noqa: E731
    return jax.jit(lambda: (hidden(), fn(model.depth - 1)))()


def test_kronecker_hessian_matches_jax_hessian_at_a_random_point():
    model = ufm.make_ufm(3, 2, 3, 1e-2, width=4, dtype="float64")
    params = ufm.init_params(model, jax.random.key(1))

    def compare(layer):
        weight, restricted = ufm.layer_block(model, params, layer)
        # The Gauss-Newton parts add up to the Hessian too (the output is linear in one layer's weight).
        return (
            hessian.dense_hessian(restricted, weight),
            ufm.kronecker_hessian(model, params, layer),
            sum(ufm.gauss_newton_parts(model, params, layer)),
        )

    for dense, kron, gn in per_layer(model, compare):
        assert_close(kron, dense)
        assert_close(gn, dense)
    with pytest.raises(InputError, match="linear UFM only"):
        ufm.kronecker_factors(ufm.make_ufm(3, 2, 3, 1e-2, activation="relu"), params, 0)


def test_relu_gauss_newton_parts_add_up_to_the_hessian():
    # Piecewise linear: the layer-wise Hessian is exactly Gauss-Newton away from the kinks.
    model = ufm.make_ufm(2, 3, 3, 1e-2, width=3, activation="relu", dtype="float64")
    params = ufm.init_params(model, jax.random.key(2))

    def compare(p):
        weight, restricted = ufm.layer_block(model, p, 0)
        return sum(ufm.gauss_newton_parts(model, p, 0)), hessian.dense_hessian(restricted, weight)

    gn, dense = jax.jit(compare)(params)
    assert_close(gn, dense)


def test_gauss_newton_ranks_and_gradient_weights_at_collapse(rng):
    model = ufm.make_ufm(3, 4, 3, 1e-2, width=5, dtype="float64")
    opt = ufm.collapsed_optimum(model)
    params = ufm.collapsed_params(model, random_basis(rng, 5, 3))

    def measure(layer):
        split = ufm.gauss_newton_split(model, params, layer)
        coeffs = ufm.gradient_coefficients(model, params, layer)
        return (
            split.ranks,
            split.class_eigenvalues,
            split.cross_eigenvalues,
            coeffs.weights,
            coeffs.residual,
            ufm.alignment_matrix(model, params, layer),
        )

    hidden, head = per_layer(model, measure)
    stacked = [
        np.concatenate([np.asarray(h), np.asarray(t)[None]]) for h, t in zip(hidden, head, strict=True)
    ]
    for ranks, class_eigs, cross_eigs, weights, residual, align in zip(*stacked, strict=True):
        assert tuple(int(r) for r in ranks) == opt.gauss_newton_ranks == (3, 6, 0)
        # Class and cross-class parts: K + K(K-1) = K^2 equal eigenvalues, the outliers.
        assert_close(class_eigs, opt.outlier, scale=0.3)
        assert_close(cross_eigs, opt.outlier, scale=0.3)
        assert_close(weights, np.eye(3) * opt.gradient_weight)
        assert float(residual) < 1e-20
        assert_close(align, 1.0, scale=0.3)


def test_class_mean_gradients_are_the_outlier_eigenvectors(rng):
    model = ufm.make_ufm(2, 3, 3, 1e-2, width=3, dtype="float64")
    params = ufm.collapsed_params(model, random_basis(rng, 3, 2))
    delta, h = jax.jit(
        lambda p: (ufm.class_mean_gradients(model, p, 1).reshape(4, -1), ufm.kronecker_hessian(model, p, 1))
    )(params)
    delta, h = np.asarray(delta), np.asarray(h)
    outlier = ufm.collapsed_optimum(model).outlier
    assert_close(delta @ h, outlier * delta)
    gram = delta @ delta.T
    assert_close(gram, np.diag(np.diag(gram)))  # orthogonal, as predicted


# --- neural collapse ----------------------------------------------------------------------------------------


def numpy_collapse(h, classes, K, classifier):
    means = np.stack([h[:, classes == c].mean(axis=1) for c in range(K)], axis=1)
    centred = means - h.mean(axis=1, keepdims=True)
    within = h - means[:, classes]
    sigma_w = within @ within.T / h.shape[1]
    sigma_b = centred @ centred.T / K
    nc1 = np.trace(sigma_w @ np.linalg.pinv(sigma_b, hermitian=True)) / K
    norms = np.linalg.norm(means, axis=0)
    gram = means.T @ means
    angle = np.linalg.norm(gram / np.linalg.norm(gram) - np.eye(K) / np.sqrt(K))
    nc3 = np.linalg.norm(classifier.T / np.linalg.norm(classifier) - means / np.linalg.norm(means))
    return nc1, norms.std() / norms.mean(), angle, nc3


def test_collapse_metrics_match_numpy_at_a_random_point_and_vanish_at_collapse():
    model = ufm.make_ufm(3, 4, 3, 1e-2, width=5, dtype="float64")
    params = ufm.init_params(model, jax.random.key(3))
    metrics = ufm.collapse_metrics(model, params)
    feats = np.asarray(ufm.layer_features(model, params))
    classes = np.asarray(ufm.labels(model))
    # For the linear UFM the classifier seen by layer l is the product W_L ... W_{l+1}.
    product = np.asarray(params.head)
    classifiers = [None] * model.depth
    for layer in range(model.depth - 1, -1, -1):
        classifiers[layer] = product
        if layer > 0:
            product = product @ np.asarray(params.hidden[layer - 1])
    assert_close(jax.jit(ufm.effective_classifiers)(model, params), np.stack(classifiers), scale=0.1)
    for layer in range(model.depth):
        expected = numpy_collapse(feats[layer], classes, 3, classifiers[layer])
        got = (metrics.nc1[layer], metrics.nc2_equinorm[layer], metrics.nc2_angle[layer], metrics.nc3[layer])
        assert_close(np.array(got), np.array(expected))
    collapsed = ufm.collapse_metrics(model, ufm.collapsed_params(model))
    for field in collapsed:
        assert_close(field, 0.0)


def test_nc4_counts_argmax_disagreements():
    h = jnp.array([[1.0, 0.9, 0.0, 0.2], [0.0, 0.1, 1.0, 0.8]])
    classes = jnp.array([0, 0, 1, 1])
    decisions = jnp.array([0, 1, 1, 1])  # the second sample is nearer the class-0 mean
    collapse = jax.jit(ufm.feature_collapse, static_argnums=2)
    assert float(collapse(h, classes, 2, jnp.eye(2), decisions).nc4) == 0.25


# --- training -----------------------------------------------------------------------------------------------


def test_gradient_descent_from_random_init_reaches_the_analytic_optimum():
    model = ufm.make_ufm(2, 3, 3, 1e-2, width=3, dtype="float64")
    opt = ufm.collapsed_optimum(model)
    result = ufm.train_ufm(
        model,
        key=jax.random.key(0),
        init_scale=0.5,
        num_steps=2500,
        learning_rate=0.5,
        log_every=2500,
        track=False,
        progress=False,
    )
    # Linear convergence: the gap shrinks geometrically to rounding level.
    assert abs(float(result.loss[-1]) - opt.loss) < 1e-12
    np.testing.assert_allclose(
        ufm.gram_eigenvalues(model, result.params), opt.weight_gram, rtol=PARAMS_FROM_LOSS_GAP
    )
    np.testing.assert_allclose(
        ufm.predict(model, result.params), opt.gamma * ufm.targets(model), atol=PARAMS_FROM_LOSS_GAP
    )


def test_diagnostics_at_collapse_show_every_prediction():
    model = ufm.make_ufm(2, 3, 2, 1e-2, width=3, dtype="float64")
    opt = ufm.collapsed_optimum(model)
    diag = jax.jit(lambda p: ufm.diagnostics(model, p))(ufm.collapsed_params(model))
    assert_close(diag.top_eigenvalues[:, :4], opt.outlier)
    assert_close(diag.top_eigenvalues[:, 4:], 0.0)
    assert_close(diag.alignment, 1.0)
    assert_close(diag.overlap_data, 1.0)  # the gradient lies in the outlier space
    assert_close(diag.gradient_weights, np.broadcast_to(np.eye(2) / 2, (2, 2, 2)))
    assert_close(diag.loss, opt.loss, scale=0.03)


# --- CLI ----------------------------------------------------------------------------------------------------


def test_cli_prints_the_check_values(capsys):
    code, out, _ = run_cli(
        capsys,
        "ufm",
        "--K",
        "3",
        "--n",
        "40",
        "--L",
        "5",
        "--lam",
        "1e-2",
        "--d",
        "4",
        "--json",
        "--dtype",
        "float64",
    )
    assert code == 0
    payload = json.loads(out)
    assert round(payload["gamma"], 6) == CHECK["gamma"]
    assert round(payload["loss"]["theory"], 6) == CHECK["loss"]
    assert round(payload["outlier"]["theory"], 6) == CHECK["outlier"]
    assert round(payload["gram"]["theory"], 6) == CHECK["gram"]
    for row in payload["outlier"]["layers"]:
        assert row["count_at_prediction"] == 9 and row["max_rel_error"] < 1e-12
        assert round(row["lanczos_top"], 6) == CHECK["outlier"]
    np.testing.assert_allclose(payload["gram"]["layers"], CHECK["gram"], atol=PRINTED_6_DECIMALS)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--K", "3", "--n", "40", "--L", "5", "--lam", "0.5"], "no collapsed optimum"),
        (["--K", "3", "--n", "40", "--L", "5"], "--lam"),
        (["--K", "3", "--n", "40", "--L", "5", "--lam", "1e-2", "--d", "2"], "width d"),
    ],
)
def test_cli_rejects_invalid_configurations_in_one_line(capsys, argv, message):
    code, _, err = run_cli(capsys, "ufm", *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1
