"""The README figure of "Any network, any map": depth scaling, separation and alignment at initialisation in
a ReLU MLP (beside its closed form), a residual network written in Flax NNX and a pre-LayerNorm transformer
stack written in linen (no closed form: plainly labelled).

    python scripts/any_network_figure.py            # writes docs/figures/any_network.png (a minute on a CPU)

Each architecture is drawn ``NETS`` times (one input each: networks are the independent samples) and measured
by ``jaxspec.network_spectrum``: exact ``log s_i(J_l)`` of every depth prefix and the blocks' Jacobians for
the prefix alignment. The notebook ``examples/any_network.ipynb`` walks through the same code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from jaxspec import analysis, network_spectrum, networks  # noqa: E402
from jaxspec.networks import linen_segment, mlp_segments, nnx_segment  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "any_network.png"
WIDTH, DEPTH, K, NETS = 32, 64, 4, 6
TOKENS, FEATURES, BLOCKS = 4, 16, 32


class Residual(nnx.Module):
    """A pre-activation residual block ``h + W2 relu(W1 h) / sqrt(depth)``."""

    def __init__(self, width: int, depth: int, rngs: nnx.Rngs):
        self.inner = nnx.Linear(width, width, rngs=rngs, param_dtype=jnp.float64)
        self.outer = nnx.Linear(width, width, rngs=rngs, param_dtype=jnp.float64)
        self.scale = 1.0 / np.sqrt(depth)

    def __call__(self, h):
        return h + self.scale * self.outer(jax.nn.relu(self.inner(h)))


class TransformerBlock(nn.Module):
    """A pre-LayerNorm transformer block: self-attention, then an MLP, each on a residual branch."""

    features: int
    heads: int = 2

    @nn.compact
    def __call__(self, h):
        a = nn.LayerNorm(param_dtype=jnp.float64)(h)
        h = h + nn.MultiHeadDotProductAttention(num_heads=self.heads, param_dtype=jnp.float64)(a, a)
        m = nn.LayerNorm(param_dtype=jnp.float64)(h)
        hidden = nn.gelu(nn.Dense(4 * self.features, param_dtype=jnp.float64)(m))
        return h + nn.Dense(self.features, param_dtype=jnp.float64)(hidden)


def relu_mlp(seed: int, width: int, depth: int):
    params = networks.init_mlp(jax.random.key(seed), (width,) * (depth + 1), dtype=jnp.float64)
    return mlp_segments(params, final_activation=True)


def resnet(seed: int, width: int, depth: int):
    @nnx.split_rngs(splits=depth)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def blocks(rngs):
        return Residual(width, depth, rngs)

    return [nnx_segment(blocks(nnx.Rngs(seed)), stacked=True)]


def transformer(seed: int, tokens: int, features: int, depth: int):
    module = TransformerBlock(features)
    keys = jax.random.split(jax.random.key(seed), depth)
    variables = jax.vmap(lambda key: module.init(key, jnp.zeros((tokens, features))))(keys)
    return [linen_segment(module, variables, stacked=True)]


def measure(make, shape, nets: int, k: int):
    """``(log_svals (nets, L, k), prefix sines (nets, L))`` over ``nets`` networks, one input each."""
    log_svals, sines = [], []
    for s in range(nets):
        x = jnp.asarray(np.random.default_rng(1000 + s).normal(size=(1,) + shape))
        res = network_spectrum(make(s), x, k=k, dtype="float64", layer_jacobians=True)
        log_svals.append(np.asarray(res.log_svals[0]))
        sines.append(np.asarray(res.prefix_alignment(k=1)[0, :, 0]))
    return np.stack(log_svals), np.stack(sines)


def main(
    out: Path = OUT,
    width: int = WIDTH,
    depth: int = DEPTH,
    nets: int = NETS,
    tokens: int = TOKENS,
    features: int = FEATURES,
    blocks: int = BLOCKS,
) -> Path:
    runs = {
        "ReLU MLP (He)": measure(lambda s: relu_mlp(s, width, depth), (width,), nets, K),
        "ResNet (Flax NNX)": measure(lambda s: resnet(s, width, depth), (width,), nets, K),
        "pre-LN transformer (linen)": measure(
            lambda s: transformer(s, tokens, features, blocks), (tokens, features), nets, K
        ),
    }
    theory = analysis.network_theory((width,) * (depth + 1), k=K, final_activation=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    log_svals, _ = runs["ReLU MLP (He)"]
    l = np.arange(1, depth + 1)
    for i in range(K):
        per_layer = log_svals[:, :, i] / l
        axes[0].plot(l, per_layer.mean(0), color=f"C{i}", label=rf"$i = {i + 1}$")
        axes[0].plot(l, theory.exponents[i] + theory.offsets[i] / l, color=f"C{i}", ls=":", lw=1)
    axes[0].set_ylim(theory.exponents[-1] - 0.3, 0.5)
    title = r"ReLU MLP: $\frac{1}{l}\log s_i(J_l)$; dotted: masked theory $\lambda_i + c_i/l$"
    axes[0].set_title(title, fontsize=9)
    axes[0].set_xlabel("depth prefix l")
    axes[0].legend(fontsize=8)
    for j, (name, (log_svals, sines)) in enumerate(runs.items()):
        l = np.arange(1, log_svals.shape[1] + 1)
        separation = log_svals[:, :, 0] - log_svals[:, :, 1]
        axes[1].plot(l, separation.mean(0), color=f"C{j}", label=name)
        with np.errstate(divide="ignore"):
            axes[2].plot(l[:-1], np.log10(sines[:, :-1]).mean(0), color=f"C{j}", label=name)
    predicted = analysis.predicted_separation(theory.exponents, theory.offsets, np.arange(1, depth + 1))
    axes[1].plot(np.arange(1, depth + 1), predicted[:, 0], "C0:", lw=1, label="ReLU MLP theory")
    title = r"separation $\log(s_1/s_2)$ of $J_l$ (no closed form for ResNet, transformer)"
    axes[1].set_title(title, fontsize=9)
    axes[1].set_xlabel("depth prefix l (blocks)")
    axes[1].legend(fontsize=8)
    axes[2].set_title(r"alignment: $\log_{10}\sin\angle(v_1(J_l), v_1(J_L))$", fontsize=9)
    axes[2].set_xlabel("depth prefix l (blocks)")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"jaxspec.network_spectrum at initialisation, mean over {nets} networks", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
