"""End-to-end training throughput of a preset, compiled kernels against the reference operators.

``python bench/train_throughput.py [--model cxvae] [--batch-groups 64 1024] [--groups 8192]``

Each (backend, batch size) runs in its own process, because the backend is chosen when
:mod:`gvae_fast.ops` is imported; the runs alternate and each reports the best of
``--repeats`` timed epochs after one warm-up epoch, so both backends see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = """
import json, sys, time, torch
from gvae_fast import ops
from gvae_fast.data.sources import prepare_data
from gvae_fast.models import ModelConfig
from gvae_fast.training import Trainer, TrainConfig
model, (batch, groups, repeats, threads) = sys.argv[1], map(int, sys.argv[2:6])
torch.set_num_threads(threads)
torch.manual_seed(0)
data = prepare_data(groups=groups, heldout_groups=2)
trainer = Trainer(ModelConfig.preset(model), TrainConfig(batch_groups=batch))
gen = torch.Generator().manual_seed(0)
trainer.train_epoch(data.train, gen)
best = max(trainer.train_epoch(data.train, gen).groups_per_s for _ in range(repeats))
print(json.dumps({"backend": ops.backend(), "groups_per_s": best}))
"""


def measure(backend: str, model: str, batch: int, groups: int, repeats: int, threads: int) -> float:
    env = {**os.environ, "GVAE_FAST_BACKEND": backend}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, model, str(batch), str(groups), str(repeats), str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["backend"] != backend:
        raise RuntimeError(f"asked for the {backend} backend, got {result['backend']}")
    return result["groups_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cxvae")
    p.add_argument("--batch-groups", type=int, nargs="+", default=[64, 1024])
    p.add_argument("--groups", type=int, default=8192, help="Exam-Scores groups per epoch")
    p.add_argument("--repeats", type=int, default=2, help="timed epochs per run (best is kept)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    print(f"model {args.model}, {args.groups} groups/epoch, {args.threads} threads, load {os.getloadavg()[0]:.1f}")
    print("| batch groups | reference groups/s | compiled groups/s | speedup |")
    print("|---:|---:|---:|---:|")
    for batch in args.batch_groups:
        start = time.perf_counter()
        ref = measure("reference", args.model, batch, args.groups, args.repeats, args.threads)
        comp = measure("compiled", args.model, batch, args.groups, args.repeats, args.threads)
        print(f"| {batch} | {ref:.0f} | {comp:.0f} | {comp / ref:.2f}x |  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
