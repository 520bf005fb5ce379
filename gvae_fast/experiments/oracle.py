"""The exact Bayes-optimal posterior ("oracle") of the Exam-Scores model (paper §3.1, DESIGN §6).

Per group i: ``u_i = (mu_i, sigma_i) ~ N(0, I_2)``, ``v_ik ~ N(0, 1)`` and
``x_ik = 2 mu_i + a_i v_ik + eps_ik`` with ``a_i = sigma_i**2 + 1``, ``eps_ik ~ N(0, s**2)``.

Two facts make the posterior exactly computable:

* Given sigma, mu enters linearly, so it is integrated in closed form: the group
  ``x_i | sigma ~ N(0, t2 I + 4 11^T)`` with ``t2 = a**2 + s**2``, and ``mu | x_i, sigma`` is
  Gaussian. That leaves a 1-D integral over sigma, done by quadrature.
* The integrand is an even, analytic function of sigma (sigma enters only as sigma**2) that
  decays like the prior, so the trapezoid rule on a uniform grid folded onto sigma >= 0
  converges geometrically in the grid step (it is the trapezoid rule for a smooth function
  on the whole real line). The step is chosen from the largest group so that the narrowest
  possible posterior (standard deviation of sigma at least ``1/sqrt(2K)``) spans at least
  four grid steps; the grid runs to ``sigma_max`` where the prior has no mass left.

Everything else is closed-form given sigma: ``v_ik | x_ik, u`` is Gaussian with mean
``a (x - 2 mu) / t2`` and variance ``s**2 / t2`` (a point mass when ``s = 0``), so the
posterior moments of every row reduce to a few per-group expectations over sigma.
Groups are independent a posteriori, which is what makes the translation oracle a product
of the source's and target's posterior means.
"""

from __future__ import annotations

import math

import torch

from gvae_fast.data.exam_scores import exam_mean
from gvae_fast.ops.validate import check_offsets, check_values

__all__ = ["ExamPosterior", "translate"]

_LOG_2PI = math.log(2.0 * math.pi)
# Posterior mass allowed on the grid's last node before the grid is deemed too short.
_EDGE_TOLERANCE = 1e-10


class ExamPosterior:
    """Exact posterior of the Exam-Scores model for a ragged batch of groups.

    All summaries are float64 and computed eagerly; the ``[N, grid]`` quadrature weights
    are never stored (they are recomputed chunk by chunk for :meth:`sample`), so memory is
    ``O(N + M)`` plus one chunk.

    Attributes:
        log_likelihood: ``[N]`` exact ``log p(x_i)`` (u and v integrated out; 0 for an
            empty group).
        mu_mean, mu_var: ``[N]`` posterior mean and variance of mu.
        sigma2_mean, sigma2_var: ``[N]`` posterior mean and variance of sigma**2.
        grid_step, sigma_max: the quadrature grid actually used.
    """

    def __init__(
        self,
        values: torch.Tensor,
        offsets: torch.Tensor,
        noise_std: float,
        *,
        sigma_max: float = 8.0,
        grid_step: float | None = None,
        chunk_elements: int = 1 << 18,
    ) -> None:
        """Compute the posterior of every group.

        Args:
            values: ``[M, 1]`` observations of all groups, group after group.
            offsets: ``[N + 1]`` int64 CSR row pointer (DESIGN §2).
            noise_std: the observation noise ``s >= 0`` (0 is the noise-free model).
            sigma_max: upper end of the sigma grid; the default leaves prior mass below
                1e-15 outside it. A ``ValueError`` is raised if some posterior reaches it.
            grid_step: sigma grid spacing; by default ``min(0.01, 0.25 / sqrt(2 K_max))``.
            chunk_elements: groups are processed in chunks of about this many
                (group, grid node) pairs; small chunks keep the working set warm in cache.
        """
        check_values(values, "values", 2)
        if values.shape[1] != 1:
            raise ValueError(f"values must be [M, 1], got shape {tuple(values.shape)}")
        check_offsets(offsets, values.shape[0], values, "values")
        if not (noise_std >= 0.0 and math.isfinite(noise_std)):
            raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
        if not 0.0 < sigma_max < math.inf:
            raise ValueError(f"sigma_max must be finite and > 0, got {sigma_max}")

        self.offsets = offsets
        self.noise_std = float(noise_std)
        self._x = values.detach().to(torch.float64).view(-1)
        self._counts = offsets[1:] - offsets[:-1]
        self._rows = torch.repeat_interleave(
            torch.arange(self.num_groups, device=offsets.device), self._counts, output_size=self._x.numel()
        )
        self._k = self._counts.to(torch.float64)
        k_safe = self._k.clamp(min=1.0)
        self._xbar = self._segment_sum(self._x) / k_safe
        # Centred second moment, not sum(x^2) - K xbar^2, which cancels badly for large means.
        self._ss = self._segment_sum((self._x - self._xbar[self._rows]) ** 2)

        k_max = int(self._counts.max()) if self.num_groups > 0 else 0
        if grid_step is None:
            grid_step = min(0.01, 0.25 / math.sqrt(2.0 * max(k_max, 1)))
        if not grid_step > 0.0:
            raise ValueError(f"grid_step must be > 0, got {grid_step}")
        num_nodes = math.ceil(sigma_max / grid_step) + 1
        self.grid_step = sigma_max / (num_nodes - 1)
        self.sigma_max = float(sigma_max)
        self._sigma = torch.arange(num_nodes, dtype=torch.float64, device=values.device) * self.grid_step
        self._chunk = max(1, chunk_elements // num_nodes)

        self._summarise()

    @property
    def num_groups(self) -> int:
        """Number of groups N."""
        return self.offsets.numel() - 1

    @property
    def u_mean(self) -> torch.Tensor:
        """``[N, 2]`` posterior mean of ``u = (mu, sigma)``; E[sigma] = 0 by sign symmetry."""
        return torch.stack([self.mu_mean, torch.zeros_like(self.mu_mean)], dim=1)

    @property
    def v_mean(self) -> torch.Tensor:
        """``[M, 1]`` posterior mean E[v_ik | x_i]."""
        c = self._v_coef[self._rows]
        return (c[:, 0] * self._x - c[:, 1]).unsqueeze(1)

    @property
    def v_var(self) -> torch.Tensor:
        """``[M, 1]`` posterior variance Var[v_ik | x_i]."""
        c = self._v_coef[self._rows]
        x = self._x
        second = (c[:, 2] * x - c[:, 3]) * x + c[:, 4]
        return (second - (c[:, 0] * x - c[:, 1]) ** 2).clamp(min=0.0).unsqueeze(1)

    @property
    def log_likelihood_per_observation(self) -> float:
        """Held-out log-likelihood metric: ``sum_i log p(x_i) / M``."""
        if self._x.numel() == 0:
            raise ValueError("no observations")
        return float(self.log_likelihood.sum()) / self._x.numel()

    def translation_mean(self, target_index: torch.Tensor, target: ExamPosterior | None = None) -> torch.Tensor:
        """Bayes-optimal (posterior-mean) translation of every observation of this batch.

        Observation k of source group i is moved into group ``j = target_index[i]`` of
        ``target``: ``E[2 mu_j + (sigma_j^2 + 1) v_ik] = 2 E[mu_j] + (E[sigma_j^2] + 1) E[v_ik]``,
        exact because distinct groups are independent a posteriori. A group cannot be its
        own target (u_i and v_ik are dependent), so that raises ``ValueError``.

        Args:
            target_index: ``[N]`` int64, the target group of every source group.
            target: posterior of the target groups; defaults to this batch.

        Returns:
            ``[M, 1]`` float64 translations, row-aligned with this batch's ``values``.
        """
        target = self if target is None else target
        rows = self._check_target(target_index, target)
        scale = target.sigma2_mean[rows] + 1.0
        return (2.0 * target.mu_mean[rows] + scale * self.v_mean[:, 0]).unsqueeze(1)

    def sample(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One posterior draw per group: ``u_i ~ p(u | x_i)`` and ``v_ik ~ p(v | x_ik, u_i)``.

        sigma is drawn from the quadrature's grid distribution spread uniformly over each
        node's cell (exact up to the grid resolution, which is far finer than the posterior),
        then given a random sign; mu and v are exact conditional Gaussian draws.

        Returns:
            ``(u [N, 2], v [M, 1])`` float64, ``u[:, 0] = mu``, ``u[:, 1] = sigma``.
        """
        n = self.num_groups
        dev = self._x.device
        opts = {"dtype": torch.float64, "device": dev, "generator": generator}
        pick = torch.rand(n, 1, **opts)
        jitter, sign = torch.rand(2, n, **opts)
        normal = torch.randn(n, **opts)
        sigma = torch.empty(n, dtype=torch.float64, device=dev)
        for lo in range(0, n, self._chunk):
            hi = min(lo + self._chunk, n)
            log_w, _, _ = self._grid(lo, hi)
            cdf = torch.cumsum(torch.softmax(log_w, dim=1), dim=1)
            node = torch.searchsorted(cdf, pick[lo:hi]).clamp(max=self._sigma.numel() - 1)
            sigma[lo:hi] = self._sigma[node[:, 0]]
        # Node 0 stands for [0, h/2] of the folded line; abs() maps its cell onto that.
        sigma = (sigma + self.grid_step * (jitter - 0.5)).abs()
        sigma = torch.where(sign < 0.5, -sigma, sigma)

        a = sigma**2 + 1.0
        t2 = a**2 + self.noise_std**2
        d = t2 + 4.0 * self._k
        mu = 2.0 * self._k * self._xbar / d + torch.sqrt(t2 / d) * normal

        r = self._rows
        v_mean = a[r] * (self._x - 2.0 * mu[r]) / t2[r]
        v_std = self.noise_std / torch.sqrt(t2[r])
        v = v_mean + v_std * torch.randn(self._x.numel(), **opts)
        return torch.stack([mu, sigma], dim=1), v.unsqueeze(1)

    def _segment_sum(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.num_groups, dtype=x.dtype, device=x.device).index_add_(0, self._rows, x)

    def _check_target(self, target_index: torch.Tensor, target: ExamPosterior) -> torch.Tensor:
        if target_index.shape != (self.num_groups,) or target_index.dtype != torch.int64:
            raise ValueError(
                f"target_index must be int64 [{self.num_groups}], got {target_index.dtype} {tuple(target_index.shape)}"
            )
        if target_index.numel() and not (0 <= int(target_index.min()) and int(target_index.max()) < target.num_groups):
            raise ValueError(f"target_index must lie in [0, {target.num_groups})")
        if target is self and bool((target_index == torch.arange(self.num_groups, device=target_index.device)).any()):
            raise ValueError("a group cannot be its own translation target")
        return torch.repeat_interleave(target_index, self._counts, output_size=self._x.numel())

    def _grid(self, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log quadrature weights ``log(w_g p(sigma_g) p(x_i | sigma_g))`` for groups lo:hi.

        Also returns E[mu | x_i, sigma_g] and Var[mu | x_i, sigma_g], all ``[hi - lo, G]``.
        """
        sigma2 = self._sigma**2
        t2 = (sigma2 + 1.0) ** 2 + self.noise_std**2
        k = self._k[lo:hi, None]
        d = t2 + 4.0 * k
        # log N(x_i; 0, t2 I + 4 11^T): det = t2^(K-1) d, quadratic form = SS/t2 + K xbar^2/d.
        log_lik = -0.5 * (
            k * _LOG_2PI
            + (k - 1.0) * torch.log(t2)
            + torch.log(d)
            + self._ss[lo:hi, None] / t2
            + k * self._xbar[lo:hi, None] ** 2 / d
        )
        # Trapezoid on the even integrand over the real line, folded: node 0 once, others twice.
        log_quad = torch.full_like(self._sigma, math.log(2.0 * self.grid_step))
        log_quad[0] = math.log(self.grid_step)
        log_prior = -0.5 * (_LOG_2PI + sigma2)
        mu_mean = 2.0 * k * self._xbar[lo:hi, None] / d
        return log_lik + (log_prior + log_quad), mu_mean, t2 / d

    def _summarise(self) -> None:
        n = self.num_groups
        new = {"dtype": torch.float64, "device": self._x.device}
        self.log_likelihood = torch.empty(n, **new)
        self.mu_mean = torch.empty(n, **new)
        self.mu_var = torch.empty(n, **new)
        self.sigma2_mean = torch.empty(n, **new)
        self.sigma2_var = torch.empty(n, **new)
        # E[v_ik] = c0 x - c1 and E[v_ik^2] = (c2 x - c3) x + c4, with per-group c.
        self._v_coef = torch.empty(n, 5, **new)

        sigma2 = self._sigma**2
        a = sigma2 + 1.0
        t2 = a**2 + self.noise_std**2
        r = a / t2
        edge = 0.0
        for lo in range(0, n, self._chunk):
            hi = min(lo + self._chunk, n)
            log_w, m, m_var = self._grid(lo, hi)
            log_z = torch.logsumexp(log_w, dim=1)
            p = torch.exp(log_w - log_z[:, None])
            edge = max(edge, float(p[:, -1].max()))
            self.log_likelihood[lo:hi] = log_z
            mu = (p * m).sum(1)
            self.mu_mean[lo:hi] = mu
            self.mu_var[lo:hi] = (p * ((m - mu[:, None]) ** 2 + m_var)).sum(1)
            s2 = p @ sigma2
            self.sigma2_mean[lo:hi] = s2
            self.sigma2_var[lo:hi] = p @ sigma2**2 - s2**2
            pm = p * m
            self._v_coef[lo:hi, 0] = p @ r
            self._v_coef[lo:hi, 1] = 2.0 * (pm @ r)
            self._v_coef[lo:hi, 2] = p @ r**2
            self._v_coef[lo:hi, 3] = 4.0 * (pm @ r**2)
            self._v_coef[lo:hi, 4] = 4.0 * ((p * (m**2 + m_var)) @ r**2) + self.noise_std**2 * (p @ (1.0 / t2))
        if edge > _EDGE_TOLERANCE:
            raise ValueError(
                f"posterior mass {edge:.2e} at sigma_max = {self.sigma_max}: the data are far "
                "outside the model's prior; raise sigma_max"
            )


def translate(
    u_target: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, target_index: torch.Tensor
) -> torch.Tensor:
    """Noise-free Exam-Scores decoding of instance codes under another group's code.

    Row k of source group i (rows of ``v`` grouped by ``offsets``) becomes
    ``2 mu_j + (sigma_j^2 + 1) v_ik`` with ``(mu_j, sigma_j) = u_target[target_index[i]]``.
    With true factors this is the ground-truth translation; with posterior draws it is the
    paper's sampled translation.

    Args:
        u_target: ``[N_target, 2]`` group codes ``(mu, sigma)``.
        v: ``[M, 1]`` instance codes of the source groups.
        offsets: ``[N + 1]`` CSR row pointer of the source groups.
        target_index: ``[N]`` int64 target group of every source group.

    Returns:
        ``[M, 1]`` translated observations.
    """
    check_values(v, "v", 2)
    check_offsets(offsets, v.shape[0], v, "v")
    if target_index.shape != (offsets.numel() - 1,):
        raise ValueError(f"target_index must be [{offsets.numel() - 1}], got {tuple(target_index.shape)}")
    u = u_target[torch.repeat_interleave(target_index, offsets[1:] - offsets[:-1], output_size=v.shape[0])]
    return exam_mean(u, v)
