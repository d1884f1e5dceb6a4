"""Where training tasks run: scheduler choice, progress files, errors from workers."""

from __future__ import annotations

import importlib
import logging
import math
import os

import pytest

from migflow import tasks


def test_scheduler_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER", raising=False)
    assert tasks.resolve_scheduler(None) == "serial"
    assert tasks.resolve_scheduler(None, default="local") == "local"
    monkeypatch.setenv("DASK_SCHEDULER", "tcp://10.0.0.1:8786")
    assert tasks.resolve_scheduler(None, default="local") == "tcp://10.0.0.1:8786"
    assert tasks.resolve_scheduler("serial", default="local") == "serial"
    monkeypatch.setenv("DASK_SCHEDULER", "")
    assert tasks.resolve_scheduler(None, default="local") == "local"
    assert tasks.is_serial("serial") and tasks.is_serial("") and not tasks.is_serial("local")


def test_progress_file_is_read_leniently(tmp_path):
    assert tasks.read_progress(tmp_path / "missing") == 0
    (tmp_path / tasks.PROGRESS_FILE).write_text("")
    assert tasks.read_progress(tmp_path) == 0
    (tmp_path / tasks.PROGRESS_FILE).write_text("17 300\n")
    assert tasks.read_progress(tmp_path) == 17


def test_unreachable_scheduler_names_the_variable(monkeypatch):
    monkeypatch.setattr(tasks, "CONNECT_TIMEOUT", "1s")
    importlib.import_module("distributed")  # importing it sets its logger's level
    level = logging.getLogger("distributed").level
    with pytest.raises(ConnectionError, match="DASK_SCHEDULER"):
        with tasks.dask_client("tcp://127.0.0.1:9", 1):
            pass
    assert logging.getLogger("distributed").level == level  # restored after a failure


@pytest.mark.slow  # starts a LocalCluster
def test_a_failing_task_raises_its_own_error(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    environ = dict(os.environ)
    # math.pow(2.0, run_dir) fails on the worker with a TypeError
    with pytest.raises(TypeError):
        tasks.run_tasks(math.pow, 2.0, [()], [tmp_path], ["bad task"], epochs=1,
                        scheduler="local", progress=False)
    # the cluster's start and stop chatter stays out of the caller's log
    chatter = [r for r in caplog.records
               if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert not chatter, chatter[:3]
    # nor do the worker settings (OMP_NUM_THREADS=1, ...) stay in this process's environment
    assert dict(os.environ) == environ


def test_independent_networks_default_to_a_local_cluster_on_a_cpu_only(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER", raising=False)
    assert tasks.resolve_scheduler(None, tasks.default_scheduler("cpu")) == "local"
    assert tasks.resolve_scheduler("", tasks.default_scheduler("cpu")) == "local"
    assert tasks.resolve_scheduler(None, tasks.default_scheduler("cuda")) == "serial"


def test_tasks_share_the_cores_of_a_local_cluster(monkeypatch):
    monkeypatch.setattr(tasks.os, "cpu_count", lambda: 4)
    assert tasks.task_threads("local", 1) == 4  # one task alone gets every core
    assert tasks.task_threads("local", 2) == 2
    assert tasks.task_threads("local", 5) == 1
    assert tasks.task_threads("local", 1, threads=3) == 3  # an explicit count wins
    assert tasks.task_threads("tcp://10.0.0.1:8786", 1) == 1  # remote workers: one each
