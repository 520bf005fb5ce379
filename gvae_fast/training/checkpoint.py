"""Files written atomically: a crash mid-write never destroys the previous version."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def _replace_atomically(path: str | Path, write: Callable[[IO], None], mode: str) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """:func:`torch.save` ``state`` to ``path`` atomically."""
    _replace_atomically(path, lambda f: torch.save(state, f), "wb")


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` atomically."""
    _replace_atomically(path, lambda f: f.write(text), "w")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic`, with a clear error if it is unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise RuntimeError(f"cannot read checkpoint {path}: {exc}") from exc
