"""A table's deliverables from its finished runs: CSV and Markdown per protocol, and the figures."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from gvae_fast.experiments.aggregate import aggregate, load_history, window
from gvae_fast.experiments.figures import data_figure, epochs_figure, loglik_figure, translation_figure
from gvae_fast.experiments.oracle_row import REGRESSOR_GROUPS, oracle_row
from gvae_fast.experiments.sweep import (
    TABLES,
    SweepResult,
    SweepSettings,
    finished_folders,
    run_args,
    run_config,
)
from gvae_fast.experiments.tables import ORACLE, ORACLE_LABEL, markdown_report, write_csv

# Paper Fig. 3 sets CxVAE beside ML-VAE; the ablation's counterpart is the unconditional V encoder.
TRANSLATION_PANELS = {"table1": ("cxvae", "cxvae-tuned", "mlvae"), "table2": ("cxvae", "cxvae-unconditional")}
PROTOCOLS = {"sample": ("", "latents drawn from q (the paper's protocol)"), "means": ("_means", "posterior means")}


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def write_report(
    table: str,
    names: Sequence[str],
    settings: SweepSettings,
    out: Path,
    command: str,
    sweep: SweepResult | None = None,
    started: float | None = None,
) -> list[Path]:
    """Aggregate the finished runs of ``names``, score the oracle, and write everything into ``out``.

    Writes ``<table>.csv``/``<table>_means.csv`` (the two protocols), ``<table>.md``,
    ``<table>_epochs.png``/``<table>_epochs_means.png``, ``<table>_loglik.png``,
    ``<table>_translation.png`` and ``data.png``. ``started`` (a ``time.perf_counter()``
    value) dates the invocation for the wall time in the Markdown header. Returns the paths.
    """
    out = Path(out)
    specs = TABLES[table]
    folders = finished_folders(table, names, settings, out)
    histories = {name: [load_history(f) for f in fs] for name, fs in folders.items()}
    labelled = {specs[name].label: histories[name] for name in names}
    config = run_config(run_args(specs[names[0]], settings, 0))
    d = config.data
    data = d.prepare()

    paths: list[Path] = []
    tables = {}
    oracle_ll = 0.0
    for protocol, (suffix, heading) in PROTOCOLS.items():
        rows = [{"model": name, **aggregate(histories[name], settings.epochs, protocol)} for name in names]
        oracle = {"model": ORACLE, **oracle_row(data, d.noise_std, protocol, settings.seeds)}
        oracle_ll = oracle["heldout_ll"]
        rows.append(oracle)
        tables[f"{heading} (x 100 MSE)"] = rows
        paths.append(out / f"{table}{suffix}.csv")
        write_csv(rows, paths[-1])
        paths.append(out / f"{table}_epochs{suffix}.png")
        epochs_figure(labelled, oracle, protocol, paths[-1])
    paths.append(out / f"{table}_loglik.png")
    loglik_figure(labelled, oracle_ll, paths[-1])
    panels = [(specs[n].label, folders[n][0]) for n in TRANSLATION_PANELS[table] if n in names]
    paths.append(out / f"{table}_translation.png")
    source, target = translation_figure(panels, data, d.noise_std, paths[-1])
    paths.append(out / "data.png")
    data_figure(data.test, paths[-1])

    run_seconds = sum(
        json.loads((f / "timing.json").read_text())["wall_seconds"]
        for fs in folders.values()
        for f in fs
        if (f / "timing.json").exists()
    )
    _, window_text = window(settings.epochs)
    lines = [
        f"Command: `{command}`",
        f"Runs: {len(names)} model(s) x {settings.seeds} seed(s), {settings.epochs} epochs, {d.groups} training "
        f"groups; every model and the oracle scored on the same {d.heldout_groups} held-out groups "
        f"(data seed {d.seed}, noise std {d.noise_std}) and their translation pairs.",
        f"Training settings (the training command's defaults plus `{' '.join(settings.extra) or 'no extra flags'}`): "
        f"{json.dumps(config.train.__dict__)}, hidden {config.model.hidden}, IWAE samples {config.iwae_samples}.",
        "Each row's own flags: " + "; ".join(f"{specs[n].label}: `{' '.join(specs[n].args)}`" for n in names) + ".",
        f"Aggregation: per epoch the mean and standard deviation (ddof 1) across seeds, averaged over {window_text}.",
        f"Oracle: the exact posterior, scored with the same regressor fitted on {REGRESSOR_GROUPS} training groups; "
        f"under q-sampling mean ± std over {settings.seeds} independent posterior draws, under posterior means "
        "deterministic. Its held-out log-likelihood is exact; the models' is an IWAE bound (the same under both "
        "protocols).",
        f"Translation figure: held-out group {source} into group {target}.",
        f"Wall time: runs {_duration(run_seconds)} in all (summed over runs' `timing.json`)"
        + (
            f"; this invocation {_duration(time.perf_counter() - started)} "
            f"({sweep.trained} run(s) trained, {sweep.reused} reused)"
            if sweep is not None and started is not None
            else ""
        )
        + ".",
        "Paper columns: its Tables 1-2 (7 runs, last 20 of 64 epochs, latents drawn from q).",
    ]
    labels = {name: specs[name].label for name in names} | {ORACLE: ORACLE_LABEL}
    title = {"table1": "Table 1: the GVAE family", "table2": "Table 2: ablation of CxVAE"}[table]
    paths.append(out / f"{table}.md")
    paths[-1].write_text(markdown_report(title, lines, tables, labels))
    return paths
