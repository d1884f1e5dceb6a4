"""Training on a small synthetic world: determinism, learning, run folders, resumption."""

import numpy as np
import pytest
import torch

from migflow.config import QUICK
from migflow.synthetic import build_world
from migflow.training import Run, train

SMALL = QUICK.replace(epochs=8, sample_size=300, checkpoint_every=4)


@pytest.fixture(scope="module")
def world():
    obs, _ = build_world(n_countries=8, seed=3)
    return obs


def _weights(run):
    return torch.cat([p.detach().flatten() for p in run.model.parameters()])


def test_same_seed_gives_identical_weights(world):
    a = train(world, SMALL, progress=False)
    b = train(world, SMALL, progress=False)
    assert torch.equal(_weights(a), _weights(b))
    assert a.history["total"].tolist() == b.history["total"].tolist()
    c = train(world, SMALL.replace(seed=1), progress=False)
    assert not torch.equal(_weights(a), _weights(c))


def test_training_lowers_the_loss(world):
    run = train(world, SMALL.replace(epochs=40), progress=False)
    first, last = run.history["total"].iloc[:3].mean(), run.history["total"].iloc[-3:].mean()
    assert last < 0.5 * first
    assert np.isfinite(run.history[["stock", "net_migration", "flow"]].values).all()


def test_run_folder_describes_itself(world, tmp_path):
    run = train(world, SMALL, run_dir=tmp_path / "run", progress=False)
    for name in ("model.pt", "config.json", "scalings.json", "history.csv", "edges.npy",
                 "heldout.nc", "checkpoint.pt"):
        assert (tmp_path / "run" / name).exists(), name
    again = Run.load(tmp_path / "run")
    assert again.config == run.config
    assert torch.equal(_weights(again), _weights(run))
    assert np.array_equal(again.heldout, run.heldout) and again.heldout.any()
    assert "FlowNet 3x32" in again.describe()
    with pytest.raises(FileNotFoundError, match="make train"):
        Run.load(tmp_path / "nothing")


def test_resume_from_checkpoint_matches_uninterrupted(world, tmp_path):
    full = train(world, SMALL, progress=False)
    train(world, SMALL.replace(epochs=4), run_dir=tmp_path / "r", progress=False)
    resumed = train(world, SMALL, run_dir=tmp_path / "r", progress=False)
    assert torch.equal(_weights(full), _weights(resumed))
    assert len(resumed.history) == SMALL.epochs


def test_heldout_corridors_stay_out_of_the_loss(world):
    run = train(world, SMALL.replace(epochs=1, test_frac=0.5), progress=False)
    assert run.heldout.sum() > 0
    assert run.history["test_flow"].iloc[0] > 0
