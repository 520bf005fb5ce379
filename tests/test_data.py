import pytest
import torch
from ragged_helpers import offsets_from_sizes

from gvae_fast.data import GroupedData, generate, translation_pairs
from gvae_fast.data.exam_scores import exam_mean
from gvae_fast.data.ragged import ragged_rows


def _data(sizes):
    off = offsets_from_sizes(sizes)
    m = int(off[-1])
    return GroupedData(
        values=torch.arange(m, dtype=torch.float32).unsqueeze(1),
        offsets=off,
        u_true=torch.arange(len(sizes), dtype=torch.float32).unsqueeze(1),
        v_true=torch.arange(m, dtype=torch.float32).unsqueeze(1) * 10,
    )


def test_properties_and_sizes():
    d = _data([3, 0, 1, 4])
    assert (d.num_groups, d.num_rows, d.dim) == (4, 8, 1)
    assert d.sizes.tolist() == [3, 0, 1, 4]
    assert d.has_truth


def test_select_gathers_whole_groups_in_order():
    d = _data([3, 0, 1, 4])
    s = d.select(torch.tensor([3, 1, 0, 3]))
    assert s.sizes.tolist() == [4, 0, 3, 4]
    assert s.values.squeeze(1).tolist() == [4, 5, 6, 7, 0, 1, 2, 4, 5, 6, 7]
    assert s.u_true.squeeze(1).tolist() == [3, 1, 0, 3]
    assert torch.equal(s.v_true, s.values * 10)


def test_ragged_rows_empty_selection():
    rows, off = ragged_rows(offsets_from_sizes([2, 3]), torch.zeros(0, dtype=torch.int64))
    assert rows.numel() == 0 and off.tolist() == [0]


def test_batches_cover_every_group_once():
    d = _data(list(range(10)))
    seen = torch.cat([b.u_true.squeeze(1) for b in d.batches(3, torch.Generator().manual_seed(1))])
    assert sorted(seen.tolist()) == list(range(10))
    assert [b.num_groups for b in d.batches(3)] == [3, 3, 3, 1]


def test_split_is_disjoint_and_complete():
    d = _data([2] * 20)
    train, test = d.split(5, torch.Generator().manual_seed(0))
    ids = train.u_true.squeeze(1).tolist() + test.u_true.squeeze(1).tolist()
    assert test.num_groups == 5 and sorted(ids) == list(range(20))
    with pytest.raises(ValueError, match="hold out"):
        d.split(20, torch.Generator())


@pytest.mark.parametrize(
    "offsets, match",
    [
        (torch.tensor([0, 2, 1, 3]), "non-decreasing"),
        (torch.tensor([1, 3]), r"offsets\[0\] must be 0"),
        (torch.tensor([0, 2]), "number of rows"),
        (torch.tensor([0.0, 3.0]), "int64"),
        (torch.tensor([[0, 3]]), "1-D"),
    ],
)
def test_bad_offsets_are_named(offsets, match):
    with pytest.raises(ValueError, match=match):
        GroupedData(values=torch.zeros(3, 1), offsets=offsets)


def test_truth_shapes_checked():
    with pytest.raises(ValueError, match="u_true"):
        GroupedData(values=torch.zeros(3, 1), offsets=torch.tensor([0, 3]), u_true=torch.zeros(2, 2))


def test_generator_statistics():
    d = generate(20000, torch.Generator().manual_seed(0), noise_std=0.1)
    k = d.sizes.double()
    assert k.min() >= 8
    assert abs(k.mean().item() - 24) < 0.1  # Poisson(16) + 8
    assert abs(k.var().item() - 16) < 0.6
    assert abs(d.u_true.mean().item()) < 0.02 and abs(d.u_true.std().item() - 1) < 0.02
    assert abs(d.v_true.std().item() - 1) < 0.01
    u_rows = torch.repeat_interleave(d.u_true, d.sizes, dim=0)
    resid = d.values - exam_mean(u_rows, d.v_true)
    assert abs(resid.std().item() - 0.1) < 0.002
    # var(x) = 4 var(mu) + E[(sigma^2 + 1)^2] var(v) + noise = 4 + 6 + 0.01
    assert abs(d.values.var().item() - 10.01) < 0.4


def test_generator_is_seeded():
    a = generate(50, torch.Generator().manual_seed(3))
    b = generate(50, torch.Generator().manual_seed(3))
    assert torch.equal(a.values, b.values) and torch.equal(a.offsets, b.offsets)


def test_translation_pairs_truth():
    d = generate(200, torch.Generator().manual_seed(0), noise_std=0.5)
    t = translation_pairs(d, torch.Generator().manual_seed(1))
    assert (t.target != torch.arange(200)).all()
    rows = torch.repeat_interleave(torch.arange(200), d.sizes)
    mu, sigma = d.u_true[t.target[rows], 0:1], d.u_true[t.target[rows], 1:2]
    assert torch.allclose(t.truth, 2 * mu + (sigma**2 + 1) * d.v_true)
