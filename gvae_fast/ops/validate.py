"""Checks of the CSR ``offsets`` contract (DESIGN §2), shared by every backend.

The checks read the offsets once (one small device-to-host copy on CUDA) so that no
kernel is ever handed a layout that would make it index out of bounds.
"""

from __future__ import annotations

import torch


def check_offsets_meta(offsets: torch.Tensor, like: torch.Tensor, name: str = "x") -> None:
    """The checks of :func:`check_offsets` that read no tensor data, so a trace can run them.

    Args:
        offsets: candidate row pointer, must be a non-empty 1-D int64 tensor on the device of
            ``like``.
        like: the data tensor the offsets index (for the device check).
        name: the data argument's name, used in messages.
    """
    if not isinstance(offsets, torch.Tensor):
        raise ValueError(f"offsets must be a torch.Tensor, got {type(offsets).__name__}")
    if offsets.dim() != 1:
        raise ValueError(f"offsets must be 1-D, got shape {tuple(offsets.shape)}")
    if offsets.dtype != torch.int64:
        raise ValueError(f"offsets must be int64, got {offsets.dtype}")
    if offsets.device != like.device:
        raise ValueError(f"offsets is on {offsets.device} but {name} is on {like.device}")
    if offsets.numel() == 0:
        raise ValueError("offsets must hold at least one entry (offsets[0] == 0)")


def check_offsets(offsets: torch.Tensor, num_rows: int, like: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``offsets`` is a valid CSR row pointer for ``num_rows`` rows.

    The compiled kernels make the same checks, with the same messages, in C++
    (``csrc/validate.h``).

    Args:
        offsets: candidate row pointer, must be 1-D int64 with ``offsets[0] == 0``,
            non-decreasing, ``offsets[-1] == num_rows``, on the same device as ``like``.
        num_rows: number of rows ``M`` of the ragged tensor.
        like: the data tensor the offsets index (for the device check).
        name: the data argument's name, used in messages.
    """
    check_offsets_meta(offsets, like, name)
    host = offsets.detach().cpu() if offsets.device.type != "cpu" else offsets.detach()
    first = int(host[0])
    last = int(host[-1])
    if first != 0:
        raise ValueError(f"offsets[0] must be 0, got {first}")
    if last != num_rows:
        raise ValueError(f"offsets[-1] must equal the number of rows of {name} ({num_rows}), got {last}")
    if host.numel() > 1 and bool((host[1:] < host[:-1]).any()):
        bad = int(torch.nonzero(host[1:] < host[:-1])[0, 0])
        raise ValueError(
            f"offsets must be non-decreasing, but offsets[{bad + 1}] = {int(host[bad + 1])} "
            f"< offsets[{bad}] = {int(host[bad])}"
        )


def check_values(x: torch.Tensor, name: str, dims: int) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating tensor with ``dims`` dimensions."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != dims:
        raise ValueError(f"{name} must be {dims}-D, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
