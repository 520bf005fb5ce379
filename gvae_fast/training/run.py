"""A whole training run: data, epochs, per-epoch metrics, files on disk, resumption.

The output folder receives ``config.json``, ``metrics.csv`` (one row per epoch),
``summary.json`` (the last epoch) and ``checkpoint.pt`` (written atomically after every
epoch; ``resume=True`` continues from it).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from gvae_fast import ops
from gvae_fast.data.sources import EXAM_SCORES, PreparedData, prepare_data
from gvae_fast.metrics import evaluate
from gvae_fast.models import ModelConfig
from gvae_fast.training.checkpoint import load_checkpoint, save_atomic, write_text_atomic
from gvae_fast.training.trainer import TrainConfig, Trainer

METRIC_COLUMNS = ["rec", "trans", "u_pred", "v_pred", "heldout_ll"]
MEAN_PROTOCOL_COLUMNS = ["rec_mean", "trans_mean", "u_pred_mean", "v_pred_mean"]
CSV_COLUMNS = ["epoch", "loss", "mi", *METRIC_COLUMNS, *MEAN_PROTOCOL_COLUMNS, "groups_per_s", "seconds"]


@dataclass(frozen=True)
class DataConfig:
    """Which data and how it is split (the held-out set depends only on these)."""

    source: str = EXAM_SCORES
    groups: int = 32768
    heldout_groups: int = 4096
    noise_std: float = 0.1
    group_col: str | None = None
    value_cols: tuple[str, ...] | None = None
    seed: int = 0

    def prepare(self) -> PreparedData:
        """The training and held-out data these settings describe."""
        return prepare_data(
            self.source, self.groups, self.heldout_groups, self.seed, self.noise_std, self.group_col, self.value_cols
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (saved as ``config.json``)."""

    model: ModelConfig
    train: TrainConfig
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 16
    seed: int = 0
    device: str = "cpu"
    iwae_samples: int = 16
    eval_means: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def matches(self, saved: dict) -> bool:
        """Whether a saved ``to_dict()`` describes this run.

        Model and training options added after the run was saved are absent from it; their
        defaults reproduce the code that ran, so they are filled in before comparing.
        """
        current = self.to_dict()
        upgraded = dict(saved)
        for part, defaults in (("model", asdict(ModelConfig())), ("train", asdict(TrainConfig()))):
            if isinstance(saved.get(part), dict):
                upgraded[part] = {**defaults, **saved[part]}
        return upgraded == current


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return buf.getvalue()


def _json_ready(row: dict) -> dict:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


@contextmanager
def _progress_bar(enabled: bool, total: int, desc: str) -> Iterator[Callable[[int, float], None] | None]:
    """A tqdm bar over groups, yielded as the trainer's per-batch callback (``None`` when disabled)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="group", leave=False) as bar:

        def report(groups: int, loss: float) -> None:
            bar.update(groups)
            bar.set_postfix(loss=f"{loss:.3f}")

        yield report


def format_metrics(row: dict) -> str:
    """One printable line of an epoch's metrics."""
    parts = [f"epoch {row['epoch']}", f"loss {row['loss']:.4f}"]
    for key in ("mi", *METRIC_COLUMNS):
        if not math.isnan(row[key]):
            parts.append(f"{key} {row[key]:.4f}")
    parts.append(f"{row['groups_per_s']:.0f} groups/s")
    return "  ".join(parts)


def run_training(
    config: RunConfig,
    out: str | Path,
    resume: bool = False,
    data: PreparedData | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> list[dict]:
    """Train ``config`` into folder ``out`` and return the per-epoch metric rows.

    ``data`` may be passed to reuse prepared data across runs (it must match ``config.data``).
    Refuses to overwrite a folder that already holds a checkpoint unless ``resume`` is set.
    """
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{out} already holds a run (checkpoint.pt); pass --resume or choose another --out")
    if config.epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {config.epochs}")
    d = config.data
    if data is None:
        data = d.prepare()
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    trainer = Trainer(config.model, config.train, config.device, config.epochs)
    history: list[dict] = []
    start_epoch = 0
    batch_gen = torch.Generator().manual_seed(config.seed)
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if not config.matches(state["config"]):
            raise ValueError(f"cannot resume {out}: its checkpoint was made with a different configuration")
        trainer.load_state_dict(state["trainer"])
        history, start_epoch = state["history"], state["epoch"]
        batch_gen.set_state(state["batch_generator"])
        _set_rng_state(state["rng"])
        log(f"resuming {out} after epoch {start_epoch}")
    out.mkdir(parents=True, exist_ok=True)
    description = {**config.to_dict(), "data_description": data.description, "backend": ops.backend()}
    write_text_atomic(json.dumps(description, indent=2), out / "config.json")

    for epoch in range(start_epoch + 1, config.epochs + 1):
        with _progress_bar(progress, data.train.num_groups, f"epoch {epoch}/{config.epochs}") as report:
            stats = trainer.train_epoch(data.train, batch_gen, report)
        eval_seed = config.seed * 1000 + epoch
        metrics = evaluate(
            trainer.model, data.train, data.test, data.translation, True, config.iwae_samples, seed=eval_seed
        )
        if config.eval_means:
            means = evaluate(trainer.model, data.train, data.test, data.translation, False, 0, seed=eval_seed)
            metrics.update({f"{k}_mean": means[k] for k in ("rec", "trans", "u_pred", "v_pred")})
        else:
            metrics.update({k: math.nan for k in MEAN_PROTOCOL_COLUMNS})
        row = {"epoch": epoch, "loss": stats.loss, "mi": stats.mi, **metrics}
        row.update(groups_per_s=stats.groups_per_s, seconds=stats.seconds)
        history.append(row)
        log(format_metrics(row))
        write_text_atomic(_csv_text(history), out / "metrics.csv")
        save_atomic(
            {
                "config": config.to_dict(),
                "trainer": trainer.state_dict(),
                "history": history,
                "epoch": epoch,
                "batch_generator": batch_gen.get_state(),
                "rng": _rng_state(),
            },
            ckpt_path,
        )
        write_text_atomic(json.dumps(_json_ready(row), indent=2), out / "summary.json")
    return history
