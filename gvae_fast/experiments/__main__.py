"""Command line: ``python -m gvae_fast.experiments {table1,table2,figures,dependence,heldout-size}``.

``table1``/``table2`` train every run not finished yet (resuming interrupted ones), then write
the tables and figures; ``figures TABLE`` only rewrites them from finished runs;
``dependence TABLE`` measures the group information left in the finished runs' instance
codes; ``heldout-size`` measures how much the translation error moves with the held-out set.
Training flags after ``--`` (or in ``--extra``) are passed to every run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from gvae_fast.experiments.dependence import dependence_markdown, dependence_rows
from gvae_fast.experiments.heldout_size import spread_markdown, translation_spread
from gvae_fast.experiments.report import write_report
from gvae_fast.experiments.sweep import TABLES, SweepSettings, run_sweep

# Commands that only read a table's finished runs (and name the table as an argument).
READ_ONLY = ("figures", "dependence")


def _add_sweep_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, default=7, help="training runs per model (seeds 0..n-1)")
    p.add_argument("--epochs", type=int, default=64)
    p.add_argument("--groups", type=int, default=32768, help="Exam-Scores training groups")
    p.add_argument(
        "--heldout-groups", type=int, default=16384, help="held-out groups (see heldout-size for why this many)"
    )
    p.add_argument("--models", nargs="+", help="only these runs of the table (default: all)")
    p.add_argument("--out", type=Path, default=Path("docs/results"), help="tables, figures, and runs/ beneath")
    p.add_argument("--extra", default="", help='training flags for every run, e.g. "--batch-groups 64"')


def build_parser() -> argparse.ArgumentParser:
    """The experiments' argument parser (training flags after ``--`` are split off before it)."""
    p = argparse.ArgumentParser(
        prog="python -m gvae_fast.experiments",
        description="Reproduce the paper's Tables 1-2 and figures, with the exact oracle row.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    for table in TABLES:
        fmt = argparse.ArgumentDefaultsHelpFormatter
        t = sub.add_parser(table, help=f"train and report {table}", formatter_class=fmt)
        _add_sweep_flags(t)
        t.add_argument("--jobs", type=int, default=1, help="runs trained at once, one process each")
        t.add_argument("--threads", type=int, help="torch threads per run (default: cores // jobs)")
    f = sub.add_parser("figures", help="rewrite a table's tables and figures from finished runs")
    f.add_argument("table", choices=sorted(TABLES))
    _add_sweep_flags(f)
    dep = sub.add_parser("dependence", help="fit a fresh critic to finished runs' instance codes")
    dep.add_argument("table", choices=sorted(TABLES))
    _add_sweep_flags(dep)
    dep.add_argument("--critic-epochs", type=int, default=3, help="passes of the fresh critic over the training set")
    dep.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    h = sub.add_parser("heldout-size", help="translation error's spread across held-out sets of each size")
    h.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192, 16384, 32768])
    h.add_argument("--repeats", type=int, default=16, help="independent held-out sets per size")
    h.add_argument("--noise-std", type=float, default=0.1)
    h.add_argument("--out", type=Path, default=Path("docs/results"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "python -m gvae_fast.experiments " + shlex.join(argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.command == "dependence":
        if args.critic_epochs < 1:
            parser.error(f"--critic-epochs must be >= 1, got {args.critic_epochs}")
        if args.threads is not None:
            if args.threads < 1:
                parser.error(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
    try:
        if args.command not in READ_ONLY:
            args.out.mkdir(parents=True, exist_ok=True)
        if args.command == "heldout-size":
            rows = translation_spread(args.sizes, args.repeats, args.noise_std)
            path = args.out / "heldout_size.md"
            path.write_text(spread_markdown(rows, args.repeats, args.noise_std) + f"\nCommand: `{command}`\n")
            print(path.read_text())
            return 0
        table = args.table if args.command in READ_ONLY else args.command
        names = args.models or list(TABLES[table])
        unknown = sorted(set(names) - set(TABLES[table]))
        if unknown:
            parser.error(f"{table} has no run(s) {unknown}; choose from {list(TABLES[table])}")
        extra = (*shlex.split(args.extra), *passthrough)
        settings = SweepSettings(args.seeds, args.epochs, args.groups, args.heldout_groups, extra)
        if args.command == "dependence":
            rows = dependence_rows(table, names, settings, args.out, args.critic_epochs)
            path = args.out / f"{table}_dependence.md"
            path.write_text(dependence_markdown(rows, table, command, args.critic_epochs))
            print(path.read_text())
            return 0
        sweep = None
        if args.command != "figures":
            sweep = run_sweep(table, names, settings, args.out, args.jobs, args.threads)
        paths = write_report(table, names, settings, args.out, command, sweep, started)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
