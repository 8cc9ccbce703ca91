"""network_spectrum on deep networks of blocks, against dense float64 ``jax.jacfwd`` products at every prefix
(a residual MLP with a stem and a head, a circular 1-D CNN, a pre-LayerNorm transformer), against
``jacobian_spectrum`` on the project's own MLP format, gradients against finite differences, and the jaxpr."""

from __future__ import annotations

import functools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from jaxspec import InputError
from jaxspec.engine import OrthogonalityWarning, initial_frame
from jaxspec.networks import init_mlp, jacobian_spectrum, mlp_segments, network_spectrum
from tests.conftest import assert_close

# The bound: the stratified scan and the dense float64 product agree on log s_i(J_l) to 1e-8 at every
# prefix (the dense SVD resolves s_i to eps * s_1, i.e. log s_i to ~1e-12 at these depths and conditionings).
DENSE_ATOL = 1e-8
# Central finite differences with step 1e-6 in float64: truncation ~1e-12, cancellation ~1e-10, relative.
FD_STEP, FD_RTOL = 1e-6, 1e-6


# ----------------------------------------------------------------------------------------------------------
# Blocks (module level: one function object per kind, so repeated calls reuse the compiled program).


def stem(p, x):
    return p["w"] @ x


def residual(p, h):
    return h + p["w2"] @ jnp.tanh(p["w1"] @ h + p["b"])


def head(p, h):
    return p["w"] @ h


def conv_relu(p, h):
    """Circular 1-D convolution (kernel 3) of ``h (positions, channels)``, then ReLU."""
    padded = jnp.concatenate([h[-1:], h, h[:1]])
    out = sum(padded[j : j + h.shape[0]] @ p["w"][j] for j in range(3))
    return jax.nn.relu(out + p["b"])


def _layer_norm(h, scale, bias):
    mean = jnp.mean(h, -1, keepdims=True)
    var = jnp.mean((h - mean) ** 2, -1, keepdims=True)
    return (h - mean) / jnp.sqrt(var + 1e-5) * scale + bias


def transformer(p, h):
    """Pre-LayerNorm transformer block on ``h (tokens, features)``: two-head self-attention, then an MLP."""
    tokens, features = h.shape
    a = _layer_norm(h, p["ln1_scale"], p["ln1_bias"])
    q, k, v = (jnp.reshape(a @ p[name], (tokens, 2, features // 2)) for name in ("wq", "wk", "wv"))
    weights = jax.nn.softmax(jnp.einsum("thd,shd->hts", q, k) / jnp.sqrt(features / 2), axis=-1)
    h = h + jnp.einsum("hts,shd->thd", weights, v).reshape(tokens, features) @ p["wo"]
    m = _layer_norm(h, p["ln2_scale"], p["ln2_bias"])
    return h + jax.nn.gelu(m @ p["w1"] + p["b1"]) @ p["w2"]


def _normal(seed, shape, scale):
    """Gaussian entries from numpy (drawing with jax would compile one small program per shape)."""
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape))


def residual_params(seed, depth, n, scale=0.6):
    k1, k2, k3 = seed, seed + 1, seed + 2
    return {
        "w1": _normal(k1, (depth, n, n), scale / np.sqrt(n)),
        "w2": _normal(k2, (depth, n, n), scale / np.sqrt(n)),
        "b": _normal(k3, (depth, n), 0.1),
    }


def transformer_params(seed, depth, features, hidden):
    keys = [seed + i for i in range(8)]
    w = lambda i, shape: _normal(keys[i], (depth,) + shape, 1.0 / np.sqrt(shape[0]))  # noqa: E731
    return {
        "wq": w(0, (features, features)),
        "wk": w(1, (features, features)),
        "wv": w(2, (features, features)),
        "wo": w(3, (features, features)),
        "w1": w(4, (features, hidden)),
        "w2": w(5, (hidden, features)),
        "b1": _normal(keys[6], (depth, hidden), 0.1),
        "ln1_scale": 1.0 + _normal(keys[7], (depth, features), 0.1),
        "ln1_bias": jnp.zeros((depth, features)),
        "ln2_scale": jnp.ones((depth, features)),
        "ln2_bias": _normal(keys[7], (depth, features), 0.1),
    }


# ----------------------------------------------------------------------------------------------------------
# The dense oracle: every block's Jacobian by jax.jacfwd, their products in float64.


def _layers(segments):
    """``[(block, params_l)]`` in order, from ``[(block, stacked_params)]``."""
    return [
        (block, jax.tree.map(lambda a, l=l: a[l], params))
        for block, params, *_ in segments
        for l in range(len(jax.tree.leaves(params)[0]))
    ]


@functools.partial(jax.jit, static_argnums=0)
def _block_jacobian(block, p, h):
    """A block's output and its Jacobian ``(out.size, h.size)`` by ``jax.jacfwd`` (jitted: one program per
    block kind, reused across layers and inputs)."""
    out = block(p, h)
    return out, jax.jacfwd(lambda y: block(p, y))(h).reshape(out.size, h.size)


def dense_products(segments, x):
    """``(jacobians, prefixes)``: each block's Jacobian at its input and the prefix products ``J_l``."""
    h, total, jacobians, prefixes = x, None, [], []
    for block, p in _layers(segments):
        out, jac = _block_jacobian(block, p, h)
        jac = np.asarray(jac, np.float64)
        total = jac if total is None else jac @ total
        jacobians.append(jac)
        prefixes.append(total)
        h = out
    return jacobians, prefixes


def dense_log_svals(prefixes, k):
    with np.errstate(divide="ignore"):
        return np.stack([np.log(np.linalg.svd(m, compute_uv=False)[:k]) for m in prefixes])


def _volume_rates(product, frame):
    """``sum_{i<=j} log|R_ii|`` of ``product @ frame`` differenced, per layer: the exact QR growth rates."""
    image = product @ frame
    volumes = [
        0.5 * np.linalg.slogdet(image[:, :j].T @ image[:, :j])[1] for j in range(1, frame.shape[1] + 1)
    ]
    return np.diff(np.concatenate([[0.0], volumes]))


# ----------------------------------------------------------------------------------------------------------
# Dense oracles.


@pytest.fixture(scope="module")
def residual_network():
    keys = [0, 1, 2, 3]
    segments = [
        (stem, {"w": _normal(keys[0], (1, 8, 5), 1.0 / np.sqrt(5))}),
        (residual, residual_params(keys[1], 10, 8)),
        (head, {"w": _normal(keys[2], (1, 6, 8), 1.0 / np.sqrt(8))}),
    ]
    xs = _normal(keys[3], (3, 5), 1.0)
    res = network_spectrum(segments, xs, k=5, dtype="float64", reortho_every=1, layer_jacobians=True, seed=3)
    return segments, xs, res


def test_residual_mlp_with_stem_and_head_matches_dense_products_at_every_prefix(residual_network):
    segments, xs, res = residual_network
    depth = 12
    chex.assert_shape(
        (res.growth_rates, res.log_svals, res.active_counts, res.outputs, res.layer_jacobians),
        ((3, 5), (3, depth, 5), (3, depth), (3, 6), (3, depth, 8, 8)),
    )
    for b in range(3):
        jacobians, prefixes = dense_products(segments, xs[b])
        np.testing.assert_allclose(res.log_svals[b], dense_log_svals(prefixes, 5), atol=DENSE_ATOL, rtol=0)
        # Growth rates: the log-volumes of J_L Q_0 for the same Haar frame (fold_in(key(seed), b)).
        frame = np.asarray(initial_frame(jax.random.fold_in(jax.random.key(3), b), 5, 8, 5, jnp.float64))
        assert_close(res.growth_rates[b], _volume_rates(prefixes[-1], frame[:5]) / depth)
        for l, jac in enumerate(jacobians):  # the blocks' Jacobians, zero-padded to the largest width
            assert_close(res.layer_jacobians[b, l, : jac.shape[0], : jac.shape[1]], jac)
        h = xs[b]
        for block, p in _layers(segments):
            h = block(p, h)
        assert_close(res.outputs[b], h)
    np.testing.assert_array_equal(res.active_counts, np.broadcast_to([8] * 11 + [6], (3, depth)))


def test_prefix_and_suffix_alignment_run_on_network_results(residual_network):
    _, _, res = residual_network
    for method, function in (
        (res.prefix_alignment, jaxspec.analysis.prefix_alignment),
        (res.suffix_alignment, jaxspec.analysis.suffix_alignment),
    ):
        sines = method(k=2)
        chex.assert_shape(sines, (3, 12, 2))
        assert_close(sines[1], function(res.layer_jacobians[1], None, 2))
    assert_close(res.prefix_alignment()[:, -1], 0.0, scale=1e3)  # J_L against itself


def test_circular_relu_cnn_matches_dense_products_and_counts_its_gates():
    keys = [10, 11, 12]
    depth, positions, channels = 6, 6, 3
    params = {
        "w": _normal(keys[0], (depth, 3, channels, channels), np.sqrt(2.0 / (3 * channels))),
        "b": _normal(keys[1], (depth, channels), 0.1),
    }
    xs = _normal(keys[2], (2, positions, channels), 1.0)
    res = network_spectrum(conv_relu, params, xs, k=3, gated=True, dtype="float64")
    chex.assert_shape(res.log_svals, (2, depth, 3))
    for b in range(2):
        _, prefixes = dense_products([(conv_relu, params)], xs[b])
        np.testing.assert_allclose(res.log_svals[b], dense_log_svals(prefixes, 3), atol=DENSE_ATOL, rtol=0)
        h, counts = xs[b], []
        for _, p in _layers([(conv_relu, params)]):
            h = conv_relu(p, h)
            counts.append(int(jnp.sum(h > 0)))
        np.testing.assert_array_equal(res.active_counts[b], counts)


def test_pre_layernorm_transformer_matches_dense_products_at_every_prefix():
    depth, tokens, features = 4, 3, 4
    params = transformer_params(2, depth, features, 8)
    xs = _normal(3, (2, tokens, features), 1.0)
    res = network_spectrum(transformer, params, xs, dtype="float64", reortho_every=1)
    chex.assert_shape((res.log_svals, res.outputs), ((2, depth, tokens * features), (2, tokens, features)))
    for b in range(2):
        _, prefixes = dense_products([(transformer, params)], xs[b])
        np.testing.assert_allclose(
            res.log_svals[b], dense_log_svals(prefixes, tokens * features), atol=DENSE_ATOL, rtol=0
        )


def test_project_mlp_format_agrees_with_jacobian_spectrum():
    widths = (7,) * 9  # two segments: eight gated layers, the linear last layer
    params = [
        {name: jnp.asarray(value) for name, value in layer.items()}
        for layer in init_mlp(jax.random.key(4), widths, bias=True, bias_std=0.1, dtype=jnp.float64)
    ]
    xs = _normal(5, (4, 7), 1.0)
    # Growth rates only (the exact singular values are checked against dense products above).
    kw = dict(k=5, dtype="float64", reortho_every=1, seed=2, singular_values=False)
    ours = network_spectrum(mlp_segments(params), xs, **kw)
    theirs = jacobian_spectrum(params, xs, prefixes=False, **kw)
    np.testing.assert_array_equal(ours.active_counts, theirs.active_counts)
    assert_close(ours.outputs, theirs.outputs)
    # Same frames, same product. Past a rank collapse (K_l < i) the orthonormal completion of a zeroed column
    # follows the sign of the zeros the gates leave (+0 from jvp, -0 from a mask product): compare the indices
    # no layer collapsed.
    full = np.asarray(ours.min_active)[:, None] >= np.arange(1, 6)
    assert full.sum() >= 8
    assert_close(np.where(full, ours.growth_rates, 0.0), np.where(full, theirs.growth_rates, 0.0))


def test_qr_auto_follows_the_engines_rule_and_equals_householder():
    # jaxspec.engine.choose_qr: CholeskyQR2 for tall frames (n >= 4 k) of ungated blocks, Householder for
    # square frames and wherever a gated block may leave fewer than k active units; the same rates either way.
    params = residual_params(8, 6, 12)
    xs = _normal(9, (3, 12), 1.0)
    kw = dict(dtype="float64", reortho_every=1, singular_values=False)
    tall = network_spectrum(residual, params, xs, k=3, qr="auto", **kw)
    assert tall.config.qr == "cholesky2"
    assert network_spectrum(residual, params, xs, k=4, qr="auto", **kw).config.qr == "householder"
    gated = init_mlp(jax.random.key(1), (12,) * 4, dtype=jnp.float64)
    assert network_spectrum(mlp_segments(gated), xs, k=2, qr="auto", **kw).config.qr == "householder"
    reference = network_spectrum(residual, params, xs, k=3, qr="householder", **kw)
    assert_close(tall.growth_rates, reference.growth_rates)


@pytest.mark.slow
def test_auto_reortho_is_the_default_and_keeps_the_per_block_result():
    params = residual_params(6, 48, 12, scale=0.4)
    xs = _normal(7, (4, 12), 1.0)
    every1 = network_spectrum(
        residual, params, xs, k=4, dtype="float64", reortho_every=1, singular_values=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", OrthogonalityWarning)
        auto32 = network_spectrum(residual, params, xs, k=4, singular_values=False)
    assert auto32.config.reortho_every > 1 and auto32.growth_rates.dtype == jnp.float64
    assert_close(auto32.growth_rates, every1.growth_rates, "float32")


def test_gradient_of_growth_rates_matches_finite_differences():
    params = residual_params(8, 6, 4)
    xs = _normal(9, (3, 4), 1.0)

    @jax.jit  # one trace serves both finite-difference evaluations
    def top_rates(params):
        res = network_spectrum(residual, params, xs, k=2, dtype="float64", singular_values=False)
        return jnp.sum(res.growth_rates)

    grad = jax.grad(top_rates)(params)
    direction = jax.tree.map(lambda a: _normal(10, a.shape, 1.0), params)
    shifted = lambda s: jax.tree.map(lambda a, d: a + s * FD_STEP * d, params, direction)  # noqa: E731
    fd = (top_rates(shifted(1.0)) - top_rates(shifted(-1.0))) / (2 * FD_STEP)
    along = sum(
        jnp.sum(g * d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction), strict=True)
    )
    np.testing.assert_allclose(float(along), float(fd), rtol=FD_RTOL)


# ----------------------------------------------------------------------------------------------------------
# The program: compile time independent of depth, one batched product per block.


def _equations(jaxpr) -> list:
    """Every equation of a jaxpr and of the jaxprs nested in it (scan, while, cond, pjit bodies)."""
    found = []
    for eqn in jaxpr.eqns:
        found.append(eqn)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    found += _equations(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    found += _equations(sub)
    return found


def test_program_size_does_not_grow_with_depth():
    xs = jnp.ones((2, 4))

    def program(depth):
        params = residual_params(11, depth, 4)
        return jax.make_jaxpr(lambda p: network_spectrum(residual, p, xs, k=2, reortho_every=1).log_svals)(
            params
        )

    assert len(_equations(program(3).jaxpr)) == len(_equations(program(24).jaxpr))


def test_one_batched_product_per_block_for_all_inputs_and_tangents():
    linear = lambda p, h: p["w"] @ h  # noqa: E731
    params = {"w": jnp.ones((3, 8, 8))}
    jaxpr = jax.make_jaxpr(
        lambda p: (
            network_spectrum(
                linear, p, jnp.ones((5, 8)), k=3, reortho_every=1, singular_values=False
            ).growth_rates
        )
    )(params)
    dots = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
    # The weights are unbatched: every product is a plain GEMM (no batch dimensions); the tangents of all
    # inputs go through one of shape (8, 5, 3) (in some order).
    assert dots and all(e.params["dimension_numbers"][1] == ((), ()) for e in dots)
    assert any(sorted(e.outvars[0].aval.shape) == [3, 5, 8] for e in dots)


# ----------------------------------------------------------------------------------------------------------
# Bad arguments.


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: network_spectrum(residual, residual_params(0, 2, 4), jnp.ones((2, 5))),
            "fails",
        ),
        (
            lambda: network_spectrum(residual, residual_params(0, 2, 4), jnp.ones((2, 4)), k=5),
            "k must",
        ),
        (
            lambda: network_spectrum(
                residual,
                {"w1": jnp.ones((2, 4, 4)), "w2": jnp.ones((3, 4, 4)), "b": jnp.ones((2, 4))},
                jnp.ones((2, 4)),
            ),
            "leading axis",
        ),
        (lambda: network_spectrum(head, {"w": jnp.ones((2, 3, 4))}, jnp.ones((2, 4))), "keep the shape"),
        (lambda: network_spectrum([(residual,)], jnp.ones((2, 4))), "segment 0"),
        (lambda: network_spectrum("residual", {}, jnp.ones((2, 4))), "block must"),
        (lambda: network_spectrum(residual, {}, jnp.ones((2, 4))), "no arrays"),
        (
            lambda: network_spectrum(residual, residual_params(0, 2, 4), jnp.ones((2, 4)), dtype="float16"),
            "dtype",
        ),
        (
            lambda: network_spectrum(residual, residual_params(0, 2, 4), jnp.ones((2, 4)), reortho_every=0),
            "reortho_every",
        ),
        (lambda: network_spectrum(residual, residual_params(0, 2, 4), None), "xs"),
        (
            lambda: network_spectrum(residual, residual_params(0, 2, 4), jnp.ones((2, 4)), qr="qr"),
            "qr",
        ),
    ],
)
def test_bad_arguments_raise_input_error(call, message):
    with pytest.raises(InputError, match=message) as info:
        call()
    assert "\n" not in str(info.value)
