"""One-table CUDA benchmark of the ragged operators: ``python bench/report_cuda.py --out DIR``.

The cases and implementations of ``bench/report.py`` (``ops_cases``: paper-sized data and a
training batch, K_i ~ Poisson(16) + 8, float32, native paths with their row ids precomputed),
moved to the GPU and timed with CUDA events: medians of ``--repeats`` calls after a warm-up,
each call synchronised, so every time includes what the caller waits for (the compiled
operators validate their offsets with one small device-to-host copy per call). Bandwidth is
given against the device's ``copy_`` bandwidth measured in the same run on 512 MiB, i.e. DRAM;
the batch case fits in L2, so its ratio can pass 100%. Writes cuda_bench.md and .json to DIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from ops_cases import LAYOUTS, MODES, OPS, WIDTHS, Layout, bytes_moved, implementations, make_input, make_layout, step

# The targets: these forwards at >= 70% of copy_ on the paper-sized data at H = 128,
# and every forward+backward faster than the fastest torch-native path.
BANDWIDTH_TARGET = 0.70
BANDWIDTH_TARGET_OPS = ("segment_sum", "loo_mean")


def cuda_ms(call: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median milliseconds of one synchronised call on the current stream."""
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_gbps(warmup: int, repeats: int) -> float:
    """GB/s of ``y.copy_(x)`` on 512 MiB, bytes read plus bytes written."""
    x = torch.empty(1 << 27, device="cuda")
    y = torch.empty_like(x)
    return 2 * x.numel() * x.element_size() / (cuda_ms(lambda: y.copy_(x), warmup, repeats) * 1e6)


def on_cuda(layout: Layout) -> Layout:
    return dataclasses.replace(
        layout,
        **{
            f.name: getattr(layout, f.name).cuda()
            for f in dataclasses.fields(layout)
            if isinstance(getattr(layout, f.name), torch.Tensor)
        },
    )


def measure(warmup: int, repeats: int) -> list[dict]:
    rows = []
    for op in OPS:
        for layout_name in LAYOUTS:
            layout = on_cuda(make_layout(layout_name))
            # segment_logmeanexp takes scores [M]: the width does not apply.
            for width in WIDTHS[:1] if op == "segment_logmeanexp" else WIDTHS:
                x = make_input(op, layout, width).cuda()
                impls = implementations(op, layout)
                for mode in MODES:
                    ms = {name: cuda_ms(step(fn, x, mode), warmup, repeats) for name, fn in impls.items()}
                    native = min((n for n in ms if n not in ("compiled", "reference")), key=ms.get)
                    rows.append(
                        {
                            "op": op,
                            "layout": f"{layout_name} N={layout.groups} M={layout.rows}",
                            "H": None if op == "segment_logmeanexp" else width,
                            "mode": mode,
                            "ms": ms["compiled"],
                            "GB/s": bytes_moved(op, layout, width, mode) / (ms["compiled"] * 1e6),
                            "native": native,
                            "native_ms": ms[native],
                            "reference_ms": ms["reference"],
                            "all_ms": ms,
                        }
                    )
    return rows


def verdicts(rows: list[dict], copy: float) -> list[str]:
    """PASS or MISS for each of the issue's targets."""
    lines = [
        f"{'PASS' if r['GB/s'] / copy >= BANDWIDTH_TARGET else 'MISS'}  {r['op']} fwd {r['layout']} H=128: "
        f"{r['GB/s'] / copy:.0%} of copy_ (target >= {BANDWIDTH_TARGET:.0%})"
        for r in rows
        if r["op"] in BANDWIDTH_TARGET_OPS and r["mode"] == "fwd" and r["layout"].startswith("paper") and r["H"] == 128
    ]
    slow = [
        f"{r['op']} {r['layout'].split()[0]} H={r['H']} ({r['native_ms'] / r['ms']:.2f}x)"
        for r in rows
        if r["mode"] == "fwd+bwd" and r["native_ms"] <= r["ms"]
    ]
    if slow:
        lines.append("MISS  fwd+bwd not faster than the fastest torch-native path: " + "; ".join(slow))
    else:
        lines.append("PASS  every fwd+bwd is faster than the fastest torch-native path")
    return lines


def table(rows: list[dict], copy: float, repeats: int) -> str:
    props = torch.cuda.get_device_properties(0)
    lines = [
        f"{props.name}, torch {torch.__version__}, CUDA {torch.version.cuda}, float32, median of {repeats}; "
        f"copy_ bandwidth this run: {copy:.0f} GB/s",
        "",
        "| op | layout | H | mode | compiled ms | GB/s | % copy_ | fastest native | native ms | × native "
        "| reference ms | × reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['op']} | {r['layout']} | {r['H'] or '-'} | {r['mode']} | {r['ms']:.3f} | {r['GB/s']:.0f} "
        f"| {r['GB/s'] / copy:.0%} | {r['native']} | {r['native_ms']:.3f} | {r['native_ms'] / r['ms']:.1f} "
        f"| {r['reference_ms']:.3f} | {r['reference_ms'] / r['ms']:.1f} |"
        for r in rows
    ]
    return "\n".join([*lines, "", *verdicts(rows, copy)]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for cuda_bench.md and cuda_bench.json")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    from gvae_fast.ops import compiled

    if not torch.cuda.is_available():
        raise SystemExit("report_cuda: torch sees no CUDA device")
    if compiled.LOAD_ERROR is not None:
        raise SystemExit(f"report_cuda: compiled backend unavailable: {compiled.LOAD_ERROR}")
    copy = copy_gbps(args.warmup, args.repeats)
    rows = measure(args.warmup, args.repeats)
    text = table(rows, copy, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cuda_bench.md").write_text(text)
    (args.out / "cuda_bench.json").write_text(json.dumps({"copy_GB/s": copy, "rows": rows}, indent=1))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
