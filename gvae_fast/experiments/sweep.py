"""The runs of each table and their execution: one folder per (model, seed), resumed or reused.

Every run's configuration is built through the training command line
(:func:`gvae_fast.train.build_parser`), so the experiments always train with that
command's current defaults plus any ``extra`` flags passed through.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from gvae_fast.data.sources import PreparedData
from gvae_fast.models import GVAE, ModelConfig
from gvae_fast.train import build_parser, config_from_args
from gvae_fast.training import DataConfig, RunConfig, run_training
from gvae_fast.training.checkpoint import load_checkpoint, write_text_atomic


@dataclass(frozen=True)
class RunSpec:
    """One row of a table: its display label and the training flags that define the model."""

    label: str
    args: tuple[str, ...]


TABLES: dict[str, dict[str, RunSpec]] = {
    "table1": {
        "cxvae": RunSpec("CxVAE (ours)", ("--model", "cxvae")),
        "mlvae": RunSpec("ML-VAE (Bouchacourt 2018)", ("--model", "mlvae")),
        "gvae": RunSpec("GVAE (Hosoya 2019)", ("--model", "gvae")),
        "nemeth": RunSpec("Nemeth 2020", ("--model", "nemeth")),
        # Ours beyond the paper: FiLM conditioning of the v encoder, a fixed, warmed-up
        # observation std instead of a learned one, a second pooling round in the group
        # encoder and a cosine-decayed lr (docs/results/README.md: what each change did).
        "cxvae-tuned": RunSpec(
            "CxVAE tuned (FiLM, obs std 0.3, 2 pools, cosine lr)",
            tuple(
                "--model cxvae --conditioning film --obs-std 0.3 --set-layers 2 --lr 2e-3 --lr-schedule cosine".split()
            ),
        ),
    },
    # Folder names are unique across tables, so Table 2 reuses Table 1's CxVAE runs.
    "table2": {
        "cxvae": RunSpec("CxVAE (ours)", ("--model", "cxvae")),
        "cxvae-average": RunSpec("U encoder: average", ("--model", "cxvae", "--group-encoder", "average")),
        "cxvae-product": RunSpec("U encoder: product", ("--model", "cxvae", "--group-encoder", "product")),
        "cxvae-unconditional": RunSpec(
            "V encoder: unconditional", ("--model", "cxvae", "--instance-encoder", "unconditional")
        ),
        "cxvae-pair-critic": RunSpec("Regulariser: pair critic", ("--model", "cxvae", "--regularizer", "pair-critic")),
        "cxvae-none": RunSpec("Regulariser: none", ("--model", "cxvae", "--regularizer", "none")),
    },
}

# Flags the sweep sets itself; passing them through would silently break the table.
MANAGED_FLAGS = (
    "--model",
    "--group-encoder",
    "--instance-encoder",
    "--regularizer",
    "--data",
    "--epochs",
    "--groups",
    "--heldout-groups",
    "--seed",
    "--out",
    "--resume",
    "--threads",
)


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep varies besides the model: seeds, epochs, data size and passed-through flags."""

    seeds: int
    epochs: int
    groups: int
    heldout_groups: int
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if min(self.seeds, self.epochs, self.groups) < 1 or self.heldout_groups < 2:
            raise ValueError("need seeds, epochs, groups >= 1 and heldout_groups >= 2")
        for token in self.extra:
            if token.split("=", 1)[0] in MANAGED_FLAGS:
                raise ValueError(f"{token.split('=', 1)[0]} is set by the experiment; it cannot be passed through")


@dataclass(frozen=True)
class Job:
    """One training run of a sweep (picklable, for worker processes)."""

    name: str
    seed: int
    args: tuple[str, ...]
    folder: Path
    threads: int


@dataclass(frozen=True)
class SweepResult:
    """What one invocation did: runs trained (or resumed) and runs reused as finished."""

    trained: int
    reused: int
    seconds: float


def _flag_names(tokens: Sequence[str]) -> set[str]:
    return {t.split("=", 1)[0] for t in tokens if t.startswith("--")}


def run_args(spec: RunSpec, settings: SweepSettings, seed: int) -> list[str]:
    """Training command-line arguments of one run (the sweep's own flags come last, so they win).

    Passed-through flags may not repeat one that defines the row: the later one would win
    while the table still showed the row's own.
    """
    clash = sorted(_flag_names(spec.args) & _flag_names(settings.extra))
    if clash:
        raise ValueError(
            f"{', '.join(clash)} defines the row {spec.label!r} and cannot be passed through; "
            "leave that row out with --models"
        )
    return [
        *spec.args,
        *settings.extra,
        "--epochs",
        str(settings.epochs),
        "--groups",
        str(settings.groups),
        "--heldout-groups",
        str(settings.heldout_groups),
        "--seed",
        str(seed),
        "--quiet",
    ]


def run_config(args: Sequence[str]) -> RunConfig:
    """The :class:`RunConfig` the training command would build from ``args``."""
    return config_from_args(build_parser().parse_args(list(args)))


def run_folder(out: Path, name: str, seed: int) -> Path:
    """Folder of one run: ``<out>/runs/<name>/seed<k>``."""
    return Path(out) / "runs" / name / f"seed{seed}"


def is_finished(folder: Path, config: RunConfig) -> bool:
    """Whether ``folder`` holds a completed run of ``config`` (``ValueError`` if of another config)."""
    ckpt = folder / "checkpoint.pt"
    if not ckpt.exists():
        return False
    state = load_checkpoint(ckpt)
    if not config.matches(state["config"]):
        raise ValueError(
            f"{folder} holds a run with a different configuration (changed defaults or flags?); "
            "choose another --out or delete that folder"
        )
    return state["epoch"] >= config.epochs


def finished_folders(table: str, names: Sequence[str], settings: SweepSettings, out: Path) -> dict[str, list[Path]]:
    """Run folders of ``names`` per seed, each checked to hold a finished run of these settings.

    Also refuses runs of another configuration: a table never mixes settings.
    """
    specs = TABLES[table]
    folders = {name: [run_folder(out, name, k) for k in range(settings.seeds)] for name in names}
    for name, fs in folders.items():
        for seed, folder in enumerate(fs):
            if not is_finished(folder, run_config(run_args(specs[name], settings, seed))):
                raise ValueError(f"{folder} holds no finished run of these settings; train it with `{table}` first")
    return folders


def load_model(folder: Path) -> GVAE:
    """The model saved in a run folder's ``checkpoint.pt``, in eval mode on the CPU."""
    state = load_checkpoint(Path(folder) / "checkpoint.pt")
    model = GVAE(ModelConfig(**state["config"]["model"]))
    model.load_state_dict(state["trainer"]["model"])
    return model.eval()


@functools.lru_cache(maxsize=1)
def _prepared(d: DataConfig) -> PreparedData:
    # Consecutive runs of a worker share the data; generating it is not free at 32k groups.
    return d.prepare()


def train_job(job: Job) -> float:
    """Train (or resume) one run in this process and return its wall time in seconds.

    The run's accumulated wall time is kept in ``timing.json`` beside its checkpoint.
    """
    torch.set_num_threads(job.threads)
    config = run_config(job.args)
    tag = f"[{job.name} seed{job.seed}]"
    start = time.perf_counter()
    run_training(
        config,
        job.folder,
        resume=True,
        data=_prepared(config.data),
        log=lambda line: print(f"{tag} {line}", flush=True),
        progress=False,
    )
    seconds = time.perf_counter() - start
    timing = job.folder / "timing.json"
    before = json.loads(timing.read_text())["wall_seconds"] if timing.exists() else 0.0
    write_text_atomic(json.dumps({"wall_seconds": before + seconds}), timing)
    return seconds


def default_threads(jobs: int) -> int:
    """Threads per run when ``jobs`` run at once: the available cores shared evenly."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // jobs)


def run_sweep(
    table: str,
    names: Sequence[str],
    settings: SweepSettings,
    out: Path,
    jobs: int = 1,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Train every (model, seed) of ``names`` that is not finished yet, ``jobs`` at a time.

    Seed-major order, so an interrupted sweep has the same seeds of every model. One process
    per run when ``jobs > 1`` (spawned: forking a process that has started torch threads is
    unsafe); in this process otherwise. A failed run does not stop the others; the failures
    are raised together at the end as a ``RuntimeError``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    threads = threads or default_threads(jobs)
    pending: list[Job] = []
    reused = 0
    for seed in range(settings.seeds):
        for name in names:
            args = tuple(run_args(TABLES[table][name], settings, seed))
            folder = run_folder(out, name, seed)
            if is_finished(folder, run_config(args)):
                reused += 1
            else:
                pending.append(Job(name, seed, args, folder, threads))
    log(f"{table}: {len(pending)} run(s) to train, {reused} reused ({jobs} job(s) x {threads} thread(s))")
    start = time.perf_counter()
    failures: list[str] = []
    if jobs == 1:
        for job in pending:
            try:
                train_job(job)
            except Exception as exc:
                failures.append(f"{job.name} seed{job.seed}: {exc}")
    elif pending:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(train_job, job): job for job in pending}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    log(f"[{job.name} seed{job.seed}] done in {future.result():.0f} s")
                except Exception as exc:
                    failures.append(f"{job.name} seed{job.seed}: {exc}")
    if failures:
        raise RuntimeError("runs failed:\n  " + "\n  ".join(failures))
    return SweepResult(len(pending), reused, time.perf_counter() - start)
