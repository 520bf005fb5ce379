"""Tests of the exact Exam-Scores posterior (gvae_fast.experiments.oracle)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy import integrate

from gvae_fast.experiments.oracle import ExamPosterior, translate

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    # These tensors are small: on a shared 2-core machine, intra-op threads mostly wait on
    # each other (10x slower under load), so this module runs single-threaded.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def csr(sizes: list[int] | torch.Tensor) -> torch.Tensor:
    sizes = torch.as_tensor(sizes, dtype=torch.int64)
    return torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])


def simulate(
    sizes: torch.Tensor, noise_std: float, gen: torch.Generator, u: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw groups from the Exam-Scores model: ``(values [M,1], offsets, u [N,2], v [M,1])``."""
    offsets = csr(sizes)
    n, m = len(sizes), int(offsets[-1])
    if u is None:
        u = torch.randn(n, 2, generator=gen, dtype=F64)
    v = torch.randn(m, 1, generator=gen, dtype=F64)
    ur = u[torch.repeat_interleave(torch.arange(n), torch.as_tensor(sizes))]
    x = 2 * ur[:, :1] + (ur[:, 1:] ** 2 + 1) * v + noise_std * torch.randn(m, 1, generator=gen, dtype=F64)
    return x, offsets, u, v


def exam_sizes(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.poisson(torch.full((n,), 16.0), generator=gen).to(torch.int64) + 8


def group_of(offsets: torch.Tensor) -> torch.Tensor:
    n = offsets.numel() - 1
    return torch.repeat_interleave(torch.arange(n), offsets[1:] - offsets[:-1])


def summaries(p: ExamPosterior) -> dict[str, torch.Tensor]:
    return {
        "log_likelihood": p.log_likelihood,
        "mu_mean": p.mu_mean,
        "mu_var": p.mu_var,
        "sigma2_mean": p.sigma2_mean,
        "sigma2_var": p.sigma2_var,
        "v_mean": p.v_mean,
        "v_var": p.v_var,
    }


def test_empty_groups_give_the_prior() -> None:
    x = torch.tensor([[1.0], [-2.0], [0.5], [3.0], [0.0]], dtype=F64)
    p = ExamPosterior(x, csr([0, 3, 0, 0, 2, 0]), noise_std=0.1)
    empty = torch.tensor([0, 2, 3, 5])
    torch.testing.assert_close(p.log_likelihood[empty], torch.zeros(4, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(p.mu_mean[empty], torch.zeros(4, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(p.mu_var[empty], torch.ones(4, dtype=F64), atol=1e-12, rtol=0)
    # E[sigma^2] = 1 and Var[sigma^2] = 2 under N(0, 1); the grid's end at sigma = 8 cuts ~5e-12 of E[sigma^4].
    torch.testing.assert_close(p.sigma2_mean[empty], torch.ones(4, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(p.sigma2_var[empty], torch.full((4,), 2.0, dtype=F64), atol=1e-10, rtol=0)

    none = ExamPosterior(torch.zeros(0, 1), csr([0, 0]), noise_std=0.0)
    torch.testing.assert_close(none.log_likelihood, torch.zeros(2, dtype=F64), atol=1e-12, rtol=0)
    assert none.sample(torch.Generator().manual_seed(0))[1].shape == (0, 1)


@pytest.mark.parametrize("noise_std", [0.0, 0.1, 1.0])
def test_one_observation_matches_direct_integral(noise_std: float) -> None:
    # With K = 1 and mu integrated in closed form, x | sigma ~ N(0, (sigma^2+1)^2 + s^2 + 4).
    xs = [-3.0, 0.2, 5.0, 40.0]
    p = ExamPosterior(torch.tensor(xs, dtype=F64)[:, None], csr([1] * len(xs)), noise_std)

    def density(sig: float, x: float) -> float:
        var = (sig**2 + 1) ** 2 + noise_std**2 + 4
        return math.exp(-0.5 * sig**2 - 0.5 * x * x / var) / (2 * math.pi * math.sqrt(var))

    for i, x in enumerate(xs):
        z = integrate.quad(density, -math.inf, math.inf, args=(x,), epsabs=0, epsrel=1e-12)[0]
        e_s2 = integrate.quad(lambda s, x=x: s * s * density(s, x), -math.inf, math.inf, epsabs=0)[0] / z
        assert float(p.log_likelihood[i]) == pytest.approx(math.log(z), rel=1e-10, abs=1e-10)
        assert float(p.sigma2_mean[i]) == pytest.approx(e_s2, rel=1e-8)


@pytest.mark.parametrize("noise_std", [0.0, 0.5])
def test_two_observations_match_double_integral_over_u(noise_std: float) -> None:
    # Integrates the raw model over (mu, sigma), independent of the closed-form mu step.
    xs = np.array([1.3, -0.4])
    p = ExamPosterior(torch.tensor(xs, dtype=F64)[:, None], csr([2]), noise_std)

    def joint(mu: float, sig: float, f: int) -> float:
        var = (sig**2 + 1) ** 2 + noise_std**2
        log_lik = -0.5 * np.sum((xs - 2 * mu) ** 2) / var - np.log(2 * np.pi * var)
        return math.exp(log_lik - 0.5 * (mu * mu + sig * sig) - math.log(2 * math.pi)) * (mu, sig * sig, 1)[f]

    def over_u(f: int) -> float:
        return integrate.dblquad(lambda mu, s: joint(mu, s, f), -7, 7, -7, 7, epsabs=1e-13, epsrel=1e-10)[0]

    z = over_u(2)
    assert float(p.log_likelihood[0]) == pytest.approx(math.log(z), abs=1e-8)
    assert float(p.mu_mean[0]) == pytest.approx(over_u(0) / z, abs=1e-8)
    assert float(p.sigma2_mean[0]) == pytest.approx(over_u(1) / z, abs=1e-8)


def assert_weighted_mean(estimate: torch.Tensor, f: torch.Tensor, w: torch.Tensor) -> None:
    """``estimate`` is the self-normalised importance estimate ``sum w f`` to 5 standard errors."""
    mc = (w * f).sum()
    se = float(torch.sqrt((w**2 * (f - mc) ** 2).sum()))
    assert abs(float(estimate) - float(mc)) < 5 * se + 1e-12


@pytest.mark.parametrize("noise_std", [0.0, 0.5])
def test_matches_monte_carlo_over_the_prior(noise_std: float) -> None:
    gen = torch.Generator().manual_seed(1)
    x, offsets, _, _ = simulate(torch.tensor([1, 2, 3, 5]), noise_std, gen)
    p = ExamPosterior(x, offsets, noise_std)
    draws = 1_000_000
    mu, sig = torch.randn(2, draws, generator=gen, dtype=F64)
    a = sig**2 + 1
    t2 = a**2 + noise_std**2
    v_mean = p.v_mean[:, 0]
    for i in range(4):
        xi = x[offsets[i] : offsets[i + 1], 0]
        log_lik = (-0.5 * (xi[None, :] - 2 * mu[:, None]) ** 2 / t2[:, None]).sum(1) - 0.5 * len(xi) * torch.log(
            2 * math.pi * t2
        )
        w = torch.exp(log_lik - log_lik.max())
        w_mean = w.mean()
        # Standard error of log(mean w) by the delta method.
        se_log = float(w.std() / w_mean) / math.sqrt(draws)
        assert abs(float(p.log_likelihood[i]) - float(torch.log(w_mean) + log_lik.max())) < 5 * se_log
        w = w / w.sum()
        assert_weighted_mean(p.mu_mean[i], mu, w)
        assert_weighted_mean(p.sigma2_mean[i], sig**2, w)
        for r in range(int(offsets[i]), int(offsets[i + 1])):
            assert_weighted_mean(v_mean[r], a * (x[r, 0] - 2 * mu) / t2, w)


def assert_moments(draws: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    """Each row of ``draws`` [B, R] has the given mean and variance, to 5 standard errors."""
    reps = draws.shape[1]
    centred = draws - draws.mean(1, keepdim=True)
    fourth = (centred**4).mean(1)
    assert torch.all((draws.mean(1) - mean).abs() < 5 * (var / reps).sqrt())
    # The sample variance's standard error needs the fourth moment (sigma^2 draws are skewed).
    assert torch.all((draws.var(1) - var).abs() < 5 * ((fourth - var**2).clamp(min=0) / reps).sqrt())


@pytest.mark.parametrize("noise_std", [0.0, 0.3])
def test_draws_match_posterior_moments(noise_std: float) -> None:
    gen = torch.Generator().manual_seed(2)
    base_sizes = torch.tensor([0, 1, 4, 24, 60])
    base_x, base_offsets, _, _ = simulate(base_sizes, noise_std, gen)
    reps = 5000
    # Replicate every base group `reps` times; each copy gets an independent posterior draw.
    base = torch.arange(len(base_sizes)).repeat_interleave(reps)
    sizes = base_sizes[base]
    offsets = csr(sizes)
    rows = (base_offsets[base] - offsets[:-1]).repeat_interleave(sizes) + torch.arange(int(offsets[-1]))
    x = base_x[rows]
    p = ExamPosterior(x, offsets, noise_std)
    u, v = p.sample(gen)
    ref = ExamPosterior(base_x, base_offsets, noise_std)

    mu, sig = u[:, 0].view(-1, reps), u[:, 1].view(-1, reps)
    tol = 5 / math.sqrt(reps)
    assert_moments(mu, ref.mu_mean, ref.mu_var)
    assert_moments(sig**2, ref.sigma2_mean, ref.sigma2_var)
    # sigma's sign is not identified: draws are symmetric about 0.
    assert torch.all(sig.mean(1).abs() < tol * ref.sigma2_mean.sqrt())
    assert torch.all(((sig > 0).double().mean(1) - 0.5).abs() < tol * 0.5)

    # Row r of copy c of base group b sits at offsets[b * reps + c] + (r - base_offsets[b]).
    for b in range(len(base_sizes)):
        lo, k = int(base_offsets[b]), int(base_sizes[b])
        if k == 0:
            continue
        vb = v[int(offsets[b * reps]) : int(offsets[(b + 1) * reps]), 0].view(reps, k)
        assert_moments(vb.T, ref.v_mean[lo : lo + k, 0], ref.v_var[lo : lo + k, 0])

    if noise_std == 0:
        # A noise-free draw reproduces the data exactly.
        torch.testing.assert_close(translate(u, v, offsets, torch.arange(len(sizes))), x)


def test_translation_mean_is_the_mean_of_sampled_translations() -> None:
    gen = torch.Generator().manual_seed(3)
    noise_std = 0.2
    x, base_offsets, _, _ = simulate(torch.tensor([3, 10]), noise_std, gen)
    reps = 10000
    # Pairs (copy c of group 0) -> (copy c of group 1): independent draws of source and target.
    sizes = torch.tensor([3, 10]).repeat_interleave(reps)
    rows = torch.cat([torch.arange(0, 3).repeat(reps), torch.arange(3, 13).repeat(reps)])
    p = ExamPosterior(x[rows], csr(sizes), noise_std)
    target = torch.cat([torch.arange(reps, 2 * reps), torch.arange(reps)])
    u, v = p.sample(gen)
    sampled = translate(u, v, csr(sizes), target)[: 3 * reps, 0].view(reps, 3)
    exact = p.translation_mean(target)[:3, 0]
    assert torch.all((sampled.mean(0) - exact).abs() < 5 * sampled.std(0) / math.sqrt(reps))

    source = ExamPosterior(x[:3], csr([3]), noise_std)
    tgt = ExamPosterior(x[3:], csr([10]), noise_std)
    torch.testing.assert_close(source.translation_mean(torch.tensor([0]), tgt)[:, 0], exact)
    torch.testing.assert_close(
        exact, 2 * tgt.mu_mean[0] + (tgt.sigma2_mean[0] + 1) * source.v_mean[:, 0], rtol=1e-14, atol=0
    )


@pytest.mark.parametrize("noise_std", [0.0, 0.4])
def test_negating_the_data_mirrors_the_posterior(noise_std: float) -> None:
    # (mu, v) -> (-mu, -v) maps the model onto itself.
    gen = torch.Generator().manual_seed(4)
    x, offsets, _, _ = simulate(torch.tensor([1, 5, 30]), noise_std, gen)
    p, q = ExamPosterior(x, offsets, noise_std), ExamPosterior(-x, offsets, noise_std)
    for name, sign in [("log_likelihood", 1), ("mu_mean", -1), ("mu_var", 1), ("sigma2_mean", 1)]:
        torch.testing.assert_close(getattr(q, name), sign * getattr(p, name), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q.v_mean, -p.v_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q.v_var, p.v_var, rtol=1e-10, atol=1e-12)
    assert torch.all(p.u_mean[:, 1] == 0)
    target = torch.tensor([1, 2, 0])
    torch.testing.assert_close(q.translation_mean(target), -p.translation_mean(target), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_grid_refinement_does_not_change_results(noise_std: float) -> None:
    gen = torch.Generator().manual_seed(5)
    # Extreme and ordinary group codes, at every group size the metrics meet.
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.3], [-2.0, 1.0], [0.5, 3.0], [0.0, -4.5]], dtype=F64)
    sizes = torch.tensor([0, 1, 2, 5, 24, 200])
    u = codes.repeat_interleave(len(sizes), 0)
    x, offsets, _, _ = simulate(sizes.repeat(len(codes)), noise_std, gen, u=u)
    p = ExamPosterior(x, offsets, noise_std)
    fine = ExamPosterior(x, offsets, noise_std, grid_step=p.grid_step / 4, sigma_max=12.0)
    for name, value in summaries(p).items():
        torch.testing.assert_close(value, summaries(fine)[name], rtol=1e-9, atol=1e-11, msg=name)
    # The check has teeth: a grid coarser than the K = 200 posteriors is visibly off.
    coarse = ExamPosterior(x, offsets, noise_std, grid_step=0.2)
    assert (coarse.log_likelihood - p.log_likelihood).abs().max() > 1e-4

    # Large groups shrink the default step so that the narrowest posterior keeps its resolution.
    big, big_offsets, _, _ = simulate(torch.tensor([3000]), noise_std, gen, u=codes[2:3])
    p = ExamPosterior(big, big_offsets, noise_std)
    assert p.grid_step < 0.01
    fine = ExamPosterior(big, big_offsets, noise_std, grid_step=p.grid_step / 4)
    for name, value in summaries(p).items():
        torch.testing.assert_close(value, summaries(fine)[name], rtol=1e-9, atol=1e-11, msg=name)


def test_chunking_does_not_change_results() -> None:
    gen = torch.Generator().manual_seed(6)
    x, offsets, _, _ = simulate(torch.tensor([0, 3, 0, 7, 1, 0, 12, 4]), 0.1, gen)
    p = ExamPosterior(x, offsets, 0.1)
    assert p._chunk >= 8
    draw = p.sample(torch.Generator().manual_seed(0))
    for chunk in [1, 3 * 801]:
        q = ExamPosterior(x, offsets, 0.1, chunk_elements=chunk)
        for name, value in summaries(p).items():
            torch.testing.assert_close(value, summaries(q)[name], rtol=1e-13, atol=1e-14, msg=name)
        for a, b in zip(draw, q.sample(torch.Generator().manual_seed(0)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_posterior_means_are_bayes_optimal_on_model_data(noise_std: float) -> None:
    gen = torch.Generator().manual_seed(7)
    n = 4096
    x, offsets, u, v = simulate(exam_sizes(n, gen), noise_std, gen)
    p = ExamPosterior(x, offsets, noise_std)
    g = group_of(offsets)
    k = (offsets[1:] - offsets[:-1]).to(F64)
    target = torch.randperm(n, generator=gen)
    target = torch.where(target == torch.arange(n), (target + 1) % n, target)

    # Sample-moment plug-in: xbar = 2 mu, sd^2 = a^2 + s^2.
    xbar = torch.zeros(n, dtype=F64).index_add_(0, g, x[:, 0]) / k
    sd2 = torch.zeros(n, dtype=F64).index_add_(0, g, (x[:, 0] - xbar[g]) ** 2) / (k - 1)
    a_hat = (sd2 - noise_std**2).clamp(min=1.0).sqrt()
    plug_u = torch.stack([xbar / 2, a_hat - 1], 1)
    plug_v = (x - xbar[g, None]) / a_hat[g, None]
    plug_translation = 2 * plug_u[target[g], :1] + (plug_u[target[g], 1:] + 1) * plug_v

    truth_translation = translate(u, v, offsets, target)
    sigma2 = u[:, 1] ** 2
    err_mu = (p.mu_mean - u[:, 0]) ** 2
    err_s2 = (p.sigma2_mean - sigma2) ** 2
    err_v = (p.v_mean - v)[:, 0] ** 2
    err_t = (p.translation_mean(target) - truth_translation)[:, 0] ** 2
    assert err_mu.mean() < ((plug_u[:, 0] - u[:, 0]) ** 2).mean()
    assert err_s2.mean() < ((plug_u[:, 1] - sigma2) ** 2).mean()
    assert err_v.mean() < ((plug_v - v) ** 2).mean()
    assert err_t.mean() < ((plug_translation - truth_translation) ** 2).mean()

    # Calibration: on data from the model, E[(truth - posterior mean)^2] = E[posterior variance].
    # Differences are summed per group so that the terms are independent across groups.
    def calibrated(err: torch.Tensor, var: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        diff = err - var
        if rows is not None:
            diff = torch.zeros(n, dtype=F64).index_add_(0, rows, diff)
        assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(n)

    calibrated(err_mu, p.mu_var)
    calibrated(err_s2, p.sigma2_var)
    calibrated(err_v, p.v_var[:, 0], g)


def test_invalid_inputs_are_rejected() -> None:
    x, offsets = torch.zeros(3, 1), csr([1, 2])
    with pytest.raises(ValueError, match="noise_std"):
        ExamPosterior(x, offsets, -0.1)
    with pytest.raises(ValueError, match="noise_std"):
        ExamPosterior(x, offsets, float("nan"))
    with pytest.raises(ValueError, match=r"\[M, 1\]"):
        ExamPosterior(torch.zeros(3, 2), offsets, 0.0)
    with pytest.raises(ValueError, match="offsets"):
        ExamPosterior(x, csr([1, 1]), 0.0)
    with pytest.raises(ValueError, match="sigma_max"):
        ExamPosterior(torch.full((3, 1), 1e6), offsets, 0.0)
    p = ExamPosterior(x, offsets, 0.0)
    with pytest.raises(ValueError, match="own"):
        p.translation_mean(torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        p.translation_mean(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="int64"):
        p.translation_mean(torch.tensor([1]))
