"""pytest-benchmark suite: compiled kernels vs reference vs torch-native, per operator, layout,
width and mode. Run ``pytest bench/ --benchmark-only`` (state ``THP_MEM_ALLOC_ENABLE`` when you
quote numbers: fresh M x H outputs are page-fault bound without it, DESIGN §8)."""

from __future__ import annotations

import functools

import pytest
from ops_cases import LAYOUTS, MODES, OPS, WIDTHS, implementations, make_input, make_layout, step


@functools.cache
def _layout(name: str):
    return make_layout(name)


def _cases():
    for op in OPS:
        for layout in LAYOUTS:
            # segment_logmeanexp takes scores [M]: the width does not apply.
            for width in WIDTHS[:1] if op == "segment_logmeanexp" else WIDTHS:
                for mode in MODES:
                    for impl in implementations(op, _layout(layout)):
                        yield pytest.param(op, layout, width, mode, impl, id=f"{op}-{layout}-H{width}-{mode}-{impl}")


@pytest.mark.parametrize("op, layout, width, mode, impl", list(_cases()))
def test_ops(benchmark, op, layout, width, mode, impl):
    lay = _layout(layout)
    call = step(implementations(op, lay)[impl], make_input(op, lay, width), mode)
    benchmark.group = f"{op} {layout} H={width} {mode}"
    benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)
