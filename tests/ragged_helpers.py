"""Small builders shared by the tests (imported as a top-level module: pytest puts tests/ on sys.path)."""

import torch


def offsets_from_sizes(sizes: list[int]) -> torch.Tensor:
    """CSR offsets for the given group sizes."""
    out = torch.zeros(len(sizes) + 1, dtype=torch.int64)
    if sizes:
        out[1:] = torch.cumsum(torch.tensor(sizes, dtype=torch.int64), 0)
    return out
