import math

import pytest
import torch

from gvae_fast.data import generate, translation_pairs
from gvae_fast.data.sources import prepare_data
from gvae_fast.metrics import evaluate, prediction_error, residual_dependence
from gvae_fast.models import GVAE, ModelConfig


def test_regressor_recovers_a_known_function():
    x = torch.randn(4000, 1)
    y = torch.cat([2 * x + 1, x**2], dim=1)
    xt = torch.randn(1000, 1)
    yt = torch.cat([2 * xt + 1, xt**2], dim=1)
    assert prediction_error(x, y, xt, yt) < 0.01
    # Independent inputs carry nothing: the error is the targets' variance.
    assert prediction_error(torch.randn(4000, 1), y, torch.randn(1000, 1), yt) == pytest.approx(
        yt.var(0, unbiased=False).mean().item(), rel=0.15
    )


def _perfect_model(data):
    model = GVAE(ModelConfig.preset("cxvae"))
    truth = {"u": data.u_true, "v": data.v_true}

    def encode(x, offsets, sample=True):
        from gvae_fast.models.distributions import DiagGaussian
        from gvae_fast.models.gvae import Latents

        # Identify the batch by its values: the truth rows are found by matching x exactly.
        rows = torch.searchsorted(order_vals, x.squeeze(1))
        rows = order_idx[rows]
        groups = row_group[rows[offsets[:-1].clamp(max=max(x.shape[0] - 1, 0))]]
        u = truth["u"][groups]
        v = truth["v"][rows]
        u_rows = torch.repeat_interleave(u, offsets[1:] - offsets[:-1], dim=0, output_size=x.shape[0])
        tiny = lambda t: DiagGaussian(t, torch.full_like(t, -20.0))  # noqa: E731
        return Latents(qu=tiny(u), u=u, u_rows=u_rows, qv=tiny(v), v=v)

    order_vals, order_idx = data.values.squeeze(1).sort()
    row_group = torch.repeat_interleave(torch.arange(data.num_groups), data.sizes)
    model.encode = encode
    return model


def test_perfect_posterior_scores_near_zero_errors():
    gen = torch.Generator().manual_seed(0)
    test = generate(300, gen, noise_std=0.0)
    pairs = translation_pairs(test, gen)
    model = _perfect_model(test)
    m = evaluate(model, test, test, pairs, sample=False, iwae_samples=0)
    assert m["rec"] < 1e-10 and m["trans"] < 1e-10
    assert m["u_pred"] < 0.02 and m["v_pred"] < 0.01
    assert math.isnan(m["heldout_ll"])


def test_metrics_without_truth_are_nan_but_ll_is_finite():
    data = generate(40, torch.Generator().manual_seed(0))
    bare = data.__class__(values=data.values, offsets=data.offsets)
    model = GVAE(ModelConfig.preset("gvae"))
    m = evaluate(model, bare, bare, None, iwae_samples=3)
    assert math.isnan(m["trans"]) and math.isnan(m["u_pred"]) and math.isnan(m["v_pred"])
    assert math.isfinite(m["rec"]) and math.isfinite(m["heldout_ll"])


def test_residual_dependence_separates_clean_from_leaky_codes():
    data = prepare_data(groups=1024, heldout_groups=256, seed=0)

    def true_v(batch):
        return batch.v_true

    def leaky(batch):
        # The group's mean score leaks into every code: x_{-k} predicts it.
        return batch.v_true + torch.repeat_interleave(batch.u_true[:, :1], batch.sizes, dim=0)

    clean = residual_dependence(true_v, data.train, data.test, epochs=4, batch_groups=64)
    dirty = residual_dependence(leaky, data.train, data.test, epochs=4, batch_groups=64)
    assert abs(clean) < 0.02 and dirty > 0.1, (clean, dirty)
    with pytest.raises(ValueError, match="epochs, batch_groups and hidden >= 1"):
        residual_dependence(true_v, data.train, data.test, epochs=0)
    with pytest.raises(ValueError, match="NaN"):
        residual_dependence(lambda b: torch.full_like(b.v_true, math.nan), data.train, data.test)
    with pytest.raises(ValueError, match="codes must be"):
        residual_dependence(lambda b: b.v_true[:, 0], data.train, data.test)
    singletons = data.test.select(torch.arange(4))
    singletons = type(singletons)(
        values=singletons.values[:4], offsets=torch.arange(5), u_true=singletons.u_true, v_true=singletons.v_true[:4]
    )
    with pytest.raises(ValueError, match="held-out set has no group of two or more rows"):
        residual_dependence(true_v, data.train, singletons)
