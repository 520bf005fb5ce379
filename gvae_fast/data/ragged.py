"""The ragged grouped-data type (DESIGN §2): CSR rows, never padded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from gvae_fast.ops.validate import check_offsets


def ragged_rows(offsets: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and new offsets of ``groups`` (in that order) gathered out of a CSR layout.

    Returns ``(rows, new_offsets)``: ``rows`` indexes the old rows group after group, and
    ``new_offsets`` is the CSR row pointer of the gathered groups.
    """
    starts = offsets[groups]
    sizes = offsets[groups + 1] - starts
    new_offsets = torch.zeros(groups.numel() + 1, dtype=torch.int64, device=offsets.device)
    torch.cumsum(sizes, 0, out=new_offsets[1:])
    total = int(new_offsets[-1])
    shift = torch.repeat_interleave(starts - new_offsets[:-1], sizes, output_size=total)
    return torch.arange(total, device=offsets.device) + shift, new_offsets


@dataclass(frozen=True)
class GroupedData:
    """A set of groups of observations in CSR layout.

    Attributes:
        values: ``[M, D]`` float observations, group after group.
        offsets: ``[N + 1]`` int64 row pointer; group ``i`` owns ``values[offsets[i]:offsets[i+1]]``.
        u_true: ``[N, U]`` true group latents (synthetic data only).
        v_true: ``[M, V]`` true instance latents (synthetic data only).
    """

    values: torch.Tensor
    offsets: torch.Tensor
    u_true: torch.Tensor | None = None
    v_true: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.values.dim() != 2 or not self.values.is_floating_point():
            raise ValueError(f"values must be a 2-D float tensor [M, D], got {tuple(self.values.shape)}")
        check_offsets(self.offsets, self.values.shape[0], self.values, "values")
        if self.u_true is not None and self.u_true.shape[0] != self.num_groups:
            raise ValueError(f"u_true has {self.u_true.shape[0]} rows for {self.num_groups} groups")
        if self.v_true is not None and self.v_true.shape[0] != self.num_rows:
            raise ValueError(f"v_true has {self.v_true.shape[0]} rows for {self.num_rows} observations")

    @property
    def num_groups(self) -> int:
        return self.offsets.numel() - 1

    @property
    def num_rows(self) -> int:
        return self.values.shape[0]

    @property
    def dim(self) -> int:
        return self.values.shape[1]

    @property
    def sizes(self) -> torch.Tensor:
        """Group sizes ``K_i``, int64 ``[N]``."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def has_truth(self) -> bool:
        return self.u_true is not None and self.v_true is not None

    def select(self, groups: torch.Tensor) -> GroupedData:
        """The groups ``groups`` (int64 indices, any order, repeats allowed) as a new batch."""
        rows, offsets = ragged_rows(self.offsets, groups)
        return GroupedData(
            values=self.values[rows],
            offsets=offsets,
            u_true=None if self.u_true is None else self.u_true[groups],
            v_true=None if self.v_true is None else self.v_true[rows],
        )

    def to(self, device: torch.device | str) -> GroupedData:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(self, **{f: move(getattr(self, f)) for f in ("values", "offsets", "u_true", "v_true")})

    def with_values(self, values: torch.Tensor) -> GroupedData:
        """The same groups with new observations (e.g. standardised)."""
        return replace(self, values=values)

    def split(self, heldout: int, generator: torch.Generator) -> tuple[GroupedData, GroupedData]:
        """Split by group into ``(train, heldout)`` with ``heldout`` random groups held out."""
        if not 0 < heldout < self.num_groups:
            raise ValueError(
                f"cannot hold out {heldout} of {self.num_groups} groups: need at least one group on each side"
            )
        perm = torch.randperm(self.num_groups, generator=generator).to(self.offsets.device)
        test = perm[:heldout].sort().values
        train = perm[heldout:].sort().values
        return self.select(train), self.select(test)

    def batches(self, batch_groups: int, generator: torch.Generator | None = None) -> Iterator[GroupedData]:
        """Batches of ``batch_groups`` whole groups; shuffled when a generator is given."""
        if batch_groups < 1:
            raise ValueError(f"batch_groups must be >= 1, got {batch_groups}")
        order = (
            torch.randperm(self.num_groups, generator=generator)
            if generator is not None
            else torch.arange(self.num_groups)
        ).to(self.offsets.device)
        for start in range(0, self.num_groups, batch_groups):
            yield self.select(order[start : start + batch_groups])
