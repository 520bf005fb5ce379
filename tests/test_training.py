import math

import pytest
import torch

from gvae_fast.data.sources import prepare_data
from gvae_fast.metrics import heldout_log_likelihood
from gvae_fast.models import ModelConfig
from gvae_fast.training import NonFiniteLossError, TrainConfig, Trainer
from gvae_fast.training.checkpoint import load_checkpoint, save_atomic


@pytest.mark.parametrize("preset", ["cxvae", "nemeth"])
def test_heldout_likelihood_improves_within_a_few_epochs(preset):
    torch.manual_seed(0)
    data = prepare_data(groups=2048, heldout_groups=256, seed=0)
    trainer = Trainer(ModelConfig.preset(preset), TrainConfig(batch_groups=64, lr=3e-3))
    torch.manual_seed(1)
    before = heldout_log_likelihood(trainer.model, data.test, samples=4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        stats = trainer.train_epoch(data.train, gen)
    torch.manual_seed(1)
    after = heldout_log_likelihood(trainer.model, data.test, samples=4)
    # A fresh model puts unit variance on data of variance ~10; a trained one explains most
    # of it. The exact marginal log-likelihood is about -2.08 per observation here.
    assert after > before + 1.0, (before, after)
    assert after > -3.2, after
    assert stats.groups_per_s > 0 and stats.loss < 4.0


def test_divergence_is_reported_not_propagated():
    data = prepare_data(groups=64, heldout_groups=8, seed=0)
    trainer = Trainer(ModelConfig.preset("gvae"), TrainConfig(batch_groups=64))
    poisoned = data.train.with_values(data.train.values.clone().index_fill_(0, torch.tensor([3]), float("nan")))
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        trainer.train_batch(poisoned)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_atomic({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_atomic({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_unreadable_checkpoint_is_named(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_fixed_observation_std_reaches_its_target_after_warmup():
    data = prepare_data(groups=256, heldout_groups=8, seed=0)
    trainer = Trainer(ModelConfig.preset("cxvae", obs_std=0.5), TrainConfig(batch_groups=64, obs_warmup_epochs=0.5))
    gen = torch.Generator().manual_seed(0)
    trainer.train_epoch(data.train, gen)
    assert trainer.steps == 4
    assert trainer.model.decoder.logvar.item() == pytest.approx(2 * math.log(0.5))
    assert trainer.state_dict()["steps"] == 4


def test_cosine_schedule_decays_the_model_lr_and_keeps_the_critic_lr():
    data = prepare_data(groups=256, heldout_groups=8, seed=0)
    config = TrainConfig(batch_groups=64, lr=2e-3, lr_schedule="cosine")
    with pytest.raises(ValueError, match="needs the run's length"):
        Trainer(ModelConfig.preset("cxvae"), config)
    trainer = Trainer(ModelConfig.preset("cxvae"), config, epochs=2)
    gen = torch.Generator().manual_seed(0)
    trainer.train_epoch(data.train, gen)
    # The last of 4 steps of epoch 1 ran at step 3 of 8: lr * (1 + cos(3 pi / 8)) / 2.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(2e-3 * 0.5 * (1 + math.cos(3 * math.pi / 8)))
    trainer.train_epoch(data.train, gen)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(2e-3 * 0.5 * (1 + math.cos(7 * math.pi / 8)))
    assert trainer.critic_optimizer.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="step")
