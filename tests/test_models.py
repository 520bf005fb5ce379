import math

import pytest
import torch
from ragged_helpers import offsets_from_sizes
from torch.distributions import Normal, kl_divergence

from gvae_fast.models import GVAE, ModelConfig, dv_bound, iwae_log_likelihood, negative_elbo
from gvae_fast.models.critics import PairCritic, SetCritic
from gvae_fast.models.distributions import DiagGaussian
from gvae_fast.models.encoders import AverageGroupEncoder, DeepSetsGroupEncoder, ProductGroupEncoder


def test_kl_matches_torch_distributions():
    mean, logvar = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    q = DiagGaussian(mean, logvar)
    expected = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(q.kl_standard(), expected)
    z = torch.randn(7, 3, dtype=torch.float64)
    assert torch.allclose(q.log_prob(z), Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1))


class _Fixed(torch.nn.Module):
    """Stands in for the per-observation network: returns preset (mean, logvar) rows."""

    def __init__(self, params):
        super().__init__()
        self.params = params

    def forward(self, x):
        return self.params


def test_product_encoder_is_precision_weighted():
    enc = ProductGroupEncoder(1, 1, 4)
    # Rows: group 0 = {N(1, 1), N(3, 1/3)}, group 1 empty, group 2 = {N(-2, 4)}.
    means, variances = torch.tensor([1.0, 3.0, -2.0]), torch.tensor([1.0, 1 / 3, 4.0])
    enc.net = _Fixed(torch.stack([means, variances.log()], 1))
    q = enc(torch.zeros(3, 1), offsets_from_sizes([2, 0, 1]))
    # Precision 1 + 3 = 4 -> var 1/4; mean (1*1 + 3*3) / 4 = 2.5.
    assert torch.allclose(q.mean.squeeze(1), torch.tensor([2.5, 0.0, -2.0]))
    assert torch.allclose(q.var.squeeze(1), torch.tensor([0.25, 1.0, 4.0]))


def test_average_encoder_averages_means_and_variances():
    enc = AverageGroupEncoder(1, 1, 4)
    means, variances = torch.tensor([1.0, 3.0, -2.0]), torch.tensor([1.0, 3.0, 4.0])
    enc.net = _Fixed(torch.stack([means, variances.log()], 1))
    q = enc(torch.zeros(3, 1), offsets_from_sizes([2, 0, 1]))
    assert torch.allclose(q.mean.squeeze(1), torch.tensor([2.0, 0.0, -2.0]))
    assert torch.allclose(q.var.squeeze(1), torch.tensor([2.0, 1.0, 4.0]))


@pytest.mark.parametrize("set_layers", [1, 2, 3])
def test_deepsets_encoder_is_permutation_invariant_and_sees_the_whole_set(set_layers):
    enc = DeepSetsGroupEncoder(1, 2, 8, set_layers)
    x = torch.randn(5, 1)
    off = offsets_from_sizes([3, 2])
    q = enc(x, off)
    q_perm = enc(x[[2, 0, 1, 4, 3]], off)
    assert torch.allclose(q.mean, q_perm.mean, atol=1e-6)
    q_other = enc(torch.cat([x[:2], x[2:3] + 5, x[3:]]), off)
    assert not torch.allclose(q.mean[0], q_other.mean[0]) and torch.allclose(q.mean[1], q_other.mean[1])


def test_second_pooling_round_sees_each_element_beside_its_group_summary():
    enc = DeepSetsGroupEncoder(1, 2, 8, set_layers=2)
    off = offsets_from_sizes([2, 0, 3, 1])
    x = torch.randn(6, 1, dtype=torch.float64, requires_grad=True)
    enc = enc.double()
    q = enc(x, off)
    # The empty group gets the prior; the rest depend on their own rows only.
    assert torch.equal(q.mean[1], torch.zeros(2, dtype=torch.float64)) and torch.equal(q.logvar[1], q.mean[1])
    (grad,) = torch.autograd.grad(q.mean[2].sum(), x)
    assert torch.all(grad[2:5] != 0) and torch.all(grad[[0, 1, 5]] == 0)
    # The second round's input is [x_k, pool of round one broadcast to the group's rows].
    seen = []
    enc.rounds[0].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    enc(x, off)
    pool = enc.element(x)[2:5].mean(0)
    assert torch.allclose(seen[0][2:5, 1:], pool.expand(3, -1)) and torch.equal(seen[0][:, :1], x)


def test_set_layers_are_validated():
    assert GVAE(ModelConfig.preset("cxvae", set_layers=2)).group_encoder.rounds[0] is not None
    with pytest.raises(ValueError, match="set_layers must be >= 1"):
        ModelConfig(set_layers=0)
    with pytest.raises(ValueError, match="needs the deepsets group encoder"):
        ModelConfig.preset("gvae", set_layers=2)


@pytest.mark.parametrize("preset", ["cxvae", "mlvae", "gvae", "nemeth"])
def test_presets_encode_ragged_batches(preset):
    model = GVAE(ModelConfig.preset(preset))
    off = offsets_from_sizes([3, 0, 1, 5])
    x = torch.randn(9, 1)
    lat = model.encode(x, off)
    assert lat.u.shape == (4, 2) and lat.v.shape == (9, 1) and lat.u_rows.shape == (9, 2)
    assert torch.equal(lat.u_rows[3], lat.u[2])
    assert torch.isfinite(negative_elbo(model, lat, x))


def test_conditional_instance_encoder_depends_on_u():
    model = GVAE(ModelConfig.preset("cxvae"))
    x = torch.randn(4, 1)
    a = model.instance_encoder(x, torch.zeros(4, 2)).mean
    b = model.instance_encoder(x, torch.ones(4, 2)).mean
    assert not torch.allclose(a, b)
    unc = GVAE(ModelConfig.preset("gvae")).instance_encoder
    assert torch.equal(unc(x, torch.zeros(4, 2)).mean, unc(x, torch.ones(4, 2)).mean)


def test_negative_elbo_counts_group_kl_once_per_group():
    model = GVAE(ModelConfig.preset("gvae"))
    x, off = torch.randn(6, 1), offsets_from_sizes([4, 2])
    lat = model.encode(x, off)
    rec = model.decoder.log_prob(x, lat.u_rows, lat.v).sum()
    expected = (lat.qv.kl_standard().sum() + lat.qu.kl_standard().sum() - rec) / 6
    assert torch.allclose(negative_elbo(model, lat, x), expected)


def test_exam_decoder_rejects_other_shapes():
    with pytest.raises(ValueError, match="--decoder mlp"):
        GVAE(ModelConfig.preset("cxvae", x_dim=3))
    with pytest.raises(ValueError, match="unknown model preset"):
        ModelConfig.preset("vae")
    with pytest.raises(ValueError, match="group_encoder must be one of"):
        ModelConfig(group_encoder="max")


def test_iwae_of_an_exact_posterior_is_the_exact_likelihood():
    # Linear-Gaussian model whose true posterior the encoders can represent exactly:
    # x = u + v (D=U=V=1), u, v ~ N(0,1), no observation noise beyond exp(logvar).
    torch.manual_seed(0)
    model = GVAE(ModelConfig(x_dim=1, u_dim=1, v_dim=1, hidden=4, decoder="mlp"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    # With all weights 0: q(u)=N(0,1)=prior, q(v)=N(0,1)=prior, decoder mean 0, var 1.
    # Then log w = sum_k log N(x_k; 0, 1) exactly for every draw.
    x, off = torch.randn(7, 1), offsets_from_sizes([3, 0, 4])
    ll = iwae_log_likelihood(model, x, off, samples=5)
    exact = Normal(0.0, 1.0).log_prob(x).squeeze(1)
    expected = torch.stack([exact[:3].sum(), torch.tensor(0.0), exact[3:].sum()])
    assert torch.allclose(ll, expected, atol=1e-5)


def test_dv_bound_known_value():
    joint = torch.tensor([1.0, 2.0, 3.0])
    marginal = torch.tensor([0.0, math.log(3.0)])
    assert dv_bound(joint, marginal).item() == pytest.approx(2.0 - math.log(2.0))
    assert dv_bound(torch.zeros(0), torch.zeros(0)).item() == 0.0


@pytest.mark.parametrize("critic_cls", [SetCritic, PairCritic])
def test_critics_skip_groups_of_one_and_detect_dependence(critic_cls):
    torch.manual_seed(1)
    critic = critic_cls(1, 1, 16)
    off = offsets_from_sizes([1, 1])
    assert critic(torch.randn(2, 1), torch.randn(2, 1), off).item() == 0.0
    # Codes that copy their group's mean: a critic trained briefly finds a positive bound.
    sizes = [6] * 64
    off = offsets_from_sizes(sizes)
    g = torch.randn(64, 1)
    x = torch.repeat_interleave(g, 6, 0) + 0.1 * torch.randn(384, 1)
    v = torch.repeat_interleave(g, 6, 0)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        (-critic(x, v, off)).backward()
        opt.step()
    assert critic(x, v, off).item() > 0.3


def test_film_encoder_depends_on_u_and_represents_affine_posteriors():
    model = GVAE(ModelConfig.preset("cxvae", conditioning="film"))
    enc = model.instance_encoder
    x = torch.randn(4, 1)
    assert not torch.allclose(enc(x, torch.zeros(4, 2)).mean, enc(x, torch.ones(4, 2)).mean)
    # v = (x - 2 mu) / (sigma^2 + 1) is reachable exactly: linear read-out of a modulated x.
    with torch.no_grad():
        for p in enc.parameters():
            p.zero_()
        enc.embed.weight.fill_(1.0)
        enc.linear.weight[0, 0] = 1.0
    assert torch.allclose(enc(x, torch.zeros(4, 2)).mean, x)


def test_fixed_observation_std_is_a_warmed_up_buffer():
    model = GVAE(ModelConfig.preset("cxvae", obs_std=0.3))
    assert "decoder.logvar" not in dict(model.named_parameters())
    assert "decoder.logvar" in model.state_dict()
    model.decoder.warm_up(0.5)
    assert model.decoder.logvar.item() == pytest.approx(math.log(0.3))
    model.decoder.warm_up(7.0)
    assert model.decoder.logvar.item() == pytest.approx(2 * math.log(0.3))
    learned = GVAE(ModelConfig.preset("cxvae"))
    learned.decoder.warm_up(1.0)  # no-op for a learned variance
    assert learned.decoder.logvar.item() == 0.0
    with pytest.raises(ValueError, match="obs_std must be > 0"):
        ModelConfig.preset("cxvae", obs_std=0.0)
    with pytest.raises(ValueError, match="conditioning must be one of"):
        ModelConfig(conditioning="add")
