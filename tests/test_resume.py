"""Training killed with SIGKILL resumes from its checkpoint to the same weights, bit for bit.

A subprocess trains with a run folder and a checkpoint every two epochs; as soon as the
first checkpoint appears it is killed without warning. Training then resumes in this
process from the same folder, and must end with exactly the weights and loss history of
an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from migflow.config import QUICK
from migflow.synthetic import build_world
from migflow.training import train

CONFIG = QUICK.replace(epochs=12, sample_size=60, checkpoint_every=2, seed=11)
STEP_DELAY_S = 0.25  # the child sleeps this long before every optimiser step
TIMEOUT_S = 90.0

# The child slows every Adam step down so that the kill lands well before the end of
# training, and away from the checkpoint writes (which come right after a step). It uses
# as many threads as this process, so that both compute the same floating-point sums.
CHILD = textwrap.dedent("""
    import sys, time
    import torch
    from migflow.config import RunConfig
    from migflow.synthetic import build_world
    from migflow.training import train

    config_json, run_dir, threads, delay = sys.argv[1:5]
    torch.set_num_threads(int(threads))
    adam_step = torch.optim.Adam.step

    def slow_step(self, *args, **kwargs):
        time.sleep(float(delay))
        return adam_step(self, *args, **kwargs)

    torch.optim.Adam.step = slow_step
    obs, _ = build_world(n_countries=6, seed=4)
    print("training", flush=True)
    train(obs, RunConfig.from_json(open(config_json).read()), run_dir=run_dir,
          progress=False)
    print("finished", flush=True)
""")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    obs, _ = build_world(n_countries=6, seed=4)
    return obs


def _start_child(tmp_path: Path, run_dir: Path) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "train_child.py"
    script.write_text(CHILD)
    config = tmp_path / "config.json"
    config.write_text(CONFIG.to_json())
    log = tmp_path / "child.log"
    with open(log, "w") as out:  # a file, not a pipe: the child can never block on it
        proc = subprocess.Popen(
            [sys.executable, str(script), str(config), str(run_dir),
             str(torch.get_num_threads()), str(STEP_DELAY_S)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    return proc, log


def _kill_after_first_checkpoint(proc: subprocess.Popen, log: Path, ckpt: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ckpt.exists():
            if proc.poll() is not None:
                pytest.fail(f"the training subprocess exited ({proc.returncode}) before its "
                            f"first checkpoint:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint after {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _weights(run) -> list[torch.Tensor]:
    return [p.detach().clone() for p in run.model.parameters()]


@pytest.mark.slow  # 10-25 s, most of it the child importing torch on a busy machine
def test_resume_after_sigkill_is_bitwise_identical(world, tmp_path):
    run_dir = tmp_path / "run"
    ckpt = run_dir / "checkpoint.pt"
    proc, log = _start_child(tmp_path, run_dir)
    _kill_after_first_checkpoint(proc, log, ckpt)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert "finished" not in log.read_text()
    assert not (run_dir / "model.pt").exists(), "the child finished before it was killed"

    # the kill leaves complete files only: no temporary file, a loadable checkpoint
    leftovers = [p.name for p in run_dir.iterdir() if ".tmp" in p.name]
    assert leftovers == [], f"partial files left by the kill: {leftovers}"
    state = torch.load(ckpt, weights_only=False)
    killed_at = int(state["epoch"])
    assert killed_at % CONFIG.checkpoint_every == 0 and 0 < killed_at < CONFIG.epochs

    resumed = train(world, CONFIG, run_dir=run_dir, progress=False)
    full = train(world, CONFIG, progress=False)

    assert len(resumed.history) == len(full.history) == CONFIG.epochs
    for a, b in zip(_weights(resumed), _weights(full)):
        assert torch.equal(a, b)
    for column in ("stock", "net_migration", "flow", "outflow", "total", "test_flow"):
        assert resumed.history[column].tolist() == full.history[column].tolist(), column
    assert [p.name for p in run_dir.iterdir() if ".tmp" in p.name] == []
    final = torch.load(ckpt, weights_only=False)
    assert final["epoch"] == CONFIG.epochs
