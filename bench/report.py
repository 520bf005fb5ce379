"""One-table benchmark report of the ragged operators: ``python bench/report.py``.

For every operator, layout, width and mode it prints the compiled kernel's time, the data it
must move in GB/s and as a share of the bandwidth of a ``copy_`` of the same number of bytes
measured in this run, its speedup over the fastest torch-native path and over the reference,
and the peak bytes the torch allocator holds during one call (compiled vs reference, from
``torch.profiler`` with ``profile_memory=True``). Times are the best of ``--repeats`` calls after
a warm-up: on a shared machine the minimum is the least disturbed by other work. Every path runs
in this one process, under one environment, printed first with the load average: set
``THP_MEM_ALLOC_ENABLE=1`` in the environment to measure with transparent huge pages.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
from ops_cases import LAYOUTS, MODES, OPS, WIDTHS, bytes_moved, implementations, make_input, make_layout, step
from torch.profiler import ProfilerActivity, profile


def best_ms(call: Callable[[], object], repeats: int) -> float:
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def peak_bytes(call: Callable[[], object]) -> int:
    """Peak of the bytes the CPU allocator holds, above what it held before, during one call."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


_copy_cache: dict[int, float] = {}


def copy_gbps(nbytes: int, repeats: int) -> float:
    """Bandwidth of ``dst.copy_(src)`` moving ``nbytes`` in all (half read, half written)."""
    if nbytes not in _copy_cache:
        src = torch.randn(max(nbytes // 8, 1))
        dst = torch.empty_like(src)
        _copy_cache[nbytes] = nbytes / (best_ms(lambda: dst.copy_(src), repeats) * 1e6)
    return _copy_cache[nbytes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    args = parser.parse_args()

    from gvae_fast.ops import compiled

    torch.set_num_threads(args.threads)

    if compiled.LOAD_ERROR is not None:
        raise SystemExit(f"compiled backend unavailable: {compiled.LOAD_ERROR}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}, float32, "
        f"best of {args.repeats}, load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        "| op | layout | H | mode | compiled ms | GB/s | % copy_ | fastest native | native ms "
        "| × native | reference ms | × reference | peak MB compiled | peak MB reference |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for op in args.ops:
        for layout_name in args.layouts:
            layout = make_layout(layout_name)
            for width in WIDTHS[:1] if op == "segment_logmeanexp" else WIDTHS:
                x = make_input(op, layout, width)
                impls = implementations(op, layout)
                for mode in MODES:
                    times = {name: best_ms(step(fn, x, mode), args.repeats) for name, fn in impls.items()}
                    native = min((n for n in times if n not in ("compiled", "reference")), key=times.get)
                    moved = bytes_moved(op, layout, width, mode)
                    gbps = moved / (times["compiled"] * 1e6)
                    peaks = {name: peak_bytes(step(impls[name], x, mode)) / 2**20 for name in ("compiled", "reference")}
                    print(
                        f"| {op} | {layout_name} | {'-' if op == 'segment_logmeanexp' else width} | {mode} "
                        f"| {times['compiled']:.2f} | {gbps:.1f} | {100 * gbps / copy_gbps(moved, args.repeats):.0f}% "
                        f"| {native} | {times[native]:.2f} | {times[native] / times['compiled']:.1f} "
                        f"| {times['reference']:.2f} | {times['reference'] / times['compiled']:.1f} "
                        f"| {peaks['compiled']:.2f} | {peaks['reference']:.2f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
