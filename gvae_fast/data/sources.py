"""Turns a data-set name or file into training and held-out groups, ready for a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gvae_fast.data.exam_scores import DEFAULT_NOISE_STD, Translation, generate, translation_pairs
from gvae_fast.data.ragged import GroupedData
from gvae_fast.data.tables import Standardizer, TableError, load_table

EXAM_SCORES = "exam-scores"


@dataclass(frozen=True)
class PreparedData:
    """Training and held-out groups of one data set, with what the run must remember about it.

    Attributes:
        train, test: disjoint groups.
        translation: translation pairs over ``test`` (synthetic data only).
        standardizer: the transform applied to a table's values (fitted on ``train``).
        description: JSON-ready facts for ``config.json``.
    """

    train: GroupedData
    test: GroupedData
    translation: Translation | None
    standardizer: Standardizer | None
    description: dict


def prepare_data(
    source: str = EXAM_SCORES,
    groups: int = 32768,
    heldout_groups: int = 4096,
    seed: int = 0,
    noise_std: float = DEFAULT_NOISE_STD,
    group_col: str | None = None,
    value_cols: Sequence[str] | None = None,
    heldout_fraction: float = 0.2,
) -> PreparedData:
    """Build the data of a run.

    Exam-Scores: ``groups`` training and ``heldout_groups`` held-out groups, drawn from
    seeded generators. A table (built-in name or CSV/Parquet path): a ``heldout_fraction``
    of its groups held out at random, values standardised with training statistics.
    """
    if source == EXAM_SCORES:
        if groups < 1 or heldout_groups < 2:
            raise ValueError(f"need groups >= 1 and heldout_groups >= 2, got {groups} and {heldout_groups}")
        train = generate(groups, torch.Generator().manual_seed(seed), noise_std)
        test_gen = torch.Generator().manual_seed(seed + 1_000_003)
        test = generate(heldout_groups, test_gen, noise_std)
        description = {
            "data": source,
            "groups": groups,
            "heldout_groups": heldout_groups,
            "noise_std": noise_std,
        }
        return PreparedData(train, test, translation_pairs(test, test_gen), None, description)
    data, group_col, value_cols = load_table(source, group_col, value_cols)
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    n = data.num_groups
    heldout = max(1, round(heldout_fraction * n))
    if n < 2 or heldout >= n:
        raise TableError(
            f"{source!r} has {n} group(s) in column {group_col!r}: at least 2 are needed to hold groups out"
        )
    train, test = data.split(heldout, torch.Generator().manual_seed(seed))
    standardizer = Standardizer.fit(train.values)
    description = {
        "data": source,
        "group_col": group_col,
        "value_cols": list(value_cols),
        "groups": train.num_groups,
        "heldout_groups": test.num_groups,
        "rows": data.num_rows,
        "standardizer": standardizer.to_dict(),
    }
    return PreparedData(
        train.with_values(standardizer.apply(train.values)),
        test.with_values(standardizer.apply(test.values)),
        None,
        standardizer,
        description,
    )
