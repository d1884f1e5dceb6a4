"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module, restored afterwards.

    The tensors of the tiny test worlds are small: on a busy machine OpenMP's active
    waiting made epochs 50x slower with two threads (OMP_WAIT_POLICY=PASSIVE cures it
    too), and single-threaded Dask workers need the same count to give the same weights.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def local_scheduler():
    """The address of a two-worker Dask ``LocalCluster``, started like the library's own.

    Through :func:`migflow.tasks.dask_client`, so that the workers' OMP_NUM_THREADS=1 does
    not stay in this process's environment and slow the pipeline's kernels down.
    """
    from migflow import tasks

    with tasks.dask_client(tasks.LOCAL, 2) as client:
        yield client.scheduler.address
