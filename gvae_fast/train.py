"""Command line: ``python -m gvae_fast.train --model cxvae`` (DESIGN §7)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from gvae_fast.data.sources import EXAM_SCORES
from gvae_fast.data.tables import TableError
from gvae_fast.models.config import (
    CONDITIONING_CHOICES,
    DECODER_CHOICES,
    GROUP_ENCODER_CHOICES,
    INSTANCE_ENCODER_CHOICES,
    PRESETS,
    REGULARIZER_CHOICES,
    ModelConfig,
)
from gvae_fast.training import DataConfig, NonFiniteLossError, RunConfig, TrainConfig, run_training
from gvae_fast.training.trainer import LR_SCHEDULES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gvae_fast.train",
        description="Train a Group VAE (CxVAE and the GVAE family) on ragged grouped data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=sorted(PRESETS), default="cxvae", help="preset; switches below override it")
    m.add_argument("--group-encoder", choices=GROUP_ENCODER_CHOICES)
    m.add_argument("--instance-encoder", choices=INSTANCE_ENCODER_CHOICES)
    m.add_argument("--regularizer", choices=REGULARIZER_CHOICES)
    m.add_argument("--decoder", choices=DECODER_CHOICES, help="default: exam for exam-scores, mlp otherwise")
    m.add_argument("--u-dim", type=int, help="group latent size (exam decoder: 2)")
    m.add_argument("--v-dim", type=int, help="instance latent size (exam decoder: 1)")
    m.add_argument("--hidden", type=int, default=64, help="width of every network")
    m.add_argument(
        "--conditioning", choices=CONDITIONING_CHOICES, default="concat", help="how a conditional v encoder reads u"
    )
    m.add_argument("--obs-std", type=float, help="fixed decoder observation std (default: learned)")
    m.add_argument("--set-layers", type=int, default=1, help="pooling rounds of the deepsets group encoder")
    d = p.add_argument_group("data")
    d.add_argument("--data", default=EXAM_SCORES, help="exam-scores, mlmrev-exam, or a .csv/.parquet path")
    d.add_argument("--group-col", help="group column of a table")
    d.add_argument("--value-cols", nargs="+", help="value column(s) of a table")
    d.add_argument("--groups", type=int, default=32768, help="exam-scores training groups")
    d.add_argument("--heldout-groups", type=int, default=4096, help="exam-scores held-out groups")
    d.add_argument("--noise-std", type=float, default=0.1, help="exam-scores observation noise")
    d.add_argument("--data-seed", type=int, default=0, help="seed of the data and the held-out split")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=16)
    t.add_argument("--batch-groups", type=int, default=64, help="whole groups per batch")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default="constant", help="cosine: model lr to 0 over --epochs"
    )
    t.add_argument("--critic-lr", type=float, default=1e-3)
    t.add_argument("--mi-weight", type=float, default=1.0, help="lambda: weight of the MI bound")
    t.add_argument("--critic-steps", type=int, default=1, help="critic updates per model update")
    t.add_argument(
        "--obs-warmup-epochs", type=float, default=1.0, help="epochs to move a fixed --obs-std from 1 to its value"
    )
    t.add_argument("--seed", type=int, default=0, help="seed of initialisation and training")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    t.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    o = p.add_argument_group("evaluation and output")
    o.add_argument("--iwae-samples", type=int, default=16, help="importance samples of the held-out log-likelihood")
    o.add_argument("--no-eval-means", action="store_true", help="skip the posterior-mean protocol metrics")
    o.add_argument("--out", help="output folder (default: runs/<model>-<timestamp>)")
    o.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Turn parsed arguments into a :class:`RunConfig` (raises ValueError on inconsistent choices)."""
    exam = args.data == EXAM_SCORES
    decoder = args.decoder or ("exam" if exam else "mlp")
    if args.value_cols and exam:
        raise ValueError("--value-cols/--group-col apply to tables, not to exam-scores")
    model = ModelConfig.preset(
        args.model,
        group_encoder=args.group_encoder,
        instance_encoder=args.instance_encoder,
        regularizer=args.regularizer,
        decoder=decoder,
        x_dim=1 if exam else (len(args.value_cols) if args.value_cols else None),
        u_dim=args.u_dim,
        v_dim=args.v_dim,
        hidden=args.hidden,
        conditioning=args.conditioning,
        obs_std=args.obs_std,
        set_layers=args.set_layers,
    )
    train = TrainConfig(
        batch_groups=args.batch_groups,
        lr=args.lr,
        critic_lr=args.critic_lr,
        mi_weight=args.mi_weight,
        critic_steps=args.critic_steps,
        obs_warmup_epochs=args.obs_warmup_epochs,
        lr_schedule=args.lr_schedule,
    )
    data = DataConfig(
        source=args.data,
        groups=args.groups,
        heldout_groups=args.heldout_groups,
        noise_std=args.noise_std,
        group_col=args.group_col,
        value_cols=tuple(args.value_cols) if args.value_cols else None,
        seed=args.data_seed,
    )
    return RunConfig(
        model=model,
        train=train,
        data=data,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        iwae_samples=args.iwae_samples,
        eval_means=not args.no_eval_means,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this PyTorch build sees no CUDA device")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs") / f"{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        config = config_from_args(args)
        print(f"training {args.model} on {args.data} -> {out}", flush=True)
        run_training(config, out, resume=args.resume, progress=not args.quiet)
    except (ValueError, FileExistsError, TableError, NonFiniteLossError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # With --epochs 0 only config.json exists: name what is there, not what usually is.
    written = [n for n in ("config.json", "metrics.csv", "summary.json", "checkpoint.pt") if (out / n).exists()]
    print(f"wrote {out}/" + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
