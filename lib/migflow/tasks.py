"""Independent training tasks (ensemble members, cross-validation folds) on Dask.

Members and folds are independent networks, so they parallelise perfectly. Each task is
a function that trains one network into its own run folder; the driver only submits them
and waits. Where they run is one string, the *scheduler*:

- ``"serial"`` (or empty): in this process, one after another;
- ``"local"``: a ``dask.distributed.LocalCluster`` on this machine, one worker process
  per core (at most one per task), the tasks running at once sharing the cores
  (:func:`task_threads`);
- ``"tcp://host:port"``: a running scheduler, for example one started by dask-jobqueue on
  a SLURM cluster (the workers must see the run folders).

``None`` reads ``$DASK_SCHEDULER`` and falls back to ``default``.

Progress: a worker cannot draw in the driver's notebook, but training writes the number
of finished epochs to ``progress.txt`` in its run folder (:func:`migflow.training.train`);
the driver polls those files and shows one progress bar per task.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

SERIAL = "serial"
LOCAL = "local"
PROGRESS_FILE = "progress.txt"
POLL_SECONDS = 1.0
CONNECT_TIMEOUT = "30s"  # how long to try reaching a remote scheduler


def resolve_scheduler(scheduler: str | None, default: str = SERIAL) -> str:
    """The scheduler to use: ``scheduler``, else ``$DASK_SCHEDULER``, else ``default``."""
    value = scheduler if scheduler is not None else os.environ.get("DASK_SCHEDULER")
    return value if value else default


def default_scheduler(device: str) -> str:
    """Where independent networks train when nobody says: ``"local"`` on a CPU, ``"serial"``
    on a GPU (processes sharing one accelerator gain little).

    On two cores, two single-threaded quick networks side by side train as fast as one
    after the other with two threads each (0.85 s per epoch each against 0.41 s), and
    with more cores processes keep scaling where torch's threads on small per-edge
    tensors do not; the same code then reaches a remote cluster unchanged."""
    return LOCAL if device == "cpu" else SERIAL


def task_threads(scheduler: str, n_tasks: int, threads: int | None = None) -> int:
    """Torch threads per task: ``threads`` if given; on a local cluster the cores shared
    among the tasks that run at once (one task on two cores gets both); else 1."""
    if threads:
        return threads
    if scheduler == LOCAL:
        return max(1, (os.cpu_count() or 1) // _local_workers(n_tasks))
    return 1


def _local_workers(n_tasks: int) -> int:
    """Workers of a local cluster: one per core, at most one per task."""
    return max(1, min(os.cpu_count() or 1, n_tasks))


def is_serial(scheduler: str) -> bool:
    """True for the in-process scheduler."""
    return scheduler in ("", SERIAL)


@contextmanager
def dask_client(scheduler: str, n_tasks: int) -> Iterator:
    """A ``dask.distributed`` client on a new ``LocalCluster`` or an existing scheduler."""
    from dask.distributed import Client, LocalCluster

    # distributed logs every worker start and stop at INFO, and those records reach the
    # root logger's handlers (a notebook's logging.basicConfig) as a wall of lines
    quiet = logging.getLogger("distributed")
    old_level = quiet.level
    quiet.setLevel(max(logging.WARNING, old_level))
    # a LocalCluster's nannies set OMP_NUM_THREADS=1 (and more) in *this* process's
    # environment before spawning workers and never undo it: every process started here
    # afterwards (the next notebook's kernel under pytest) would run torch on one thread
    environ = dict(os.environ)
    cluster = client = None
    try:
        if scheduler == LOCAL:
            workers = _local_workers(n_tasks)
            # ":0": the scheduler's web server on a free port (two clusters at once, e.g.
            # a notebook's and a test's, would otherwise warn about port 8787)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except OSError as err:
                raise ConnectionError(
                    f"cannot reach the Dask scheduler {scheduler!r} (DASK_SCHEDULER): {err}; "
                    "start one, or use DASK_SCHEDULER=local or serial") from err
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        quiet.setLevel(old_level)
        _restore_environ(environ)


def _restore_environ(saved: dict[str, str]) -> None:
    """Put ``os.environ`` back to ``saved``."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Fix torch's intra-op thread count inside the block (None: leave it alone).

    A network's floating-point sums depend on the thread count, so a task trained with
    the same count gives the same weights in this process and on a worker.
    """
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def read_progress(run_dir: str | os.PathLike) -> int:
    """Epochs finished so far by the training in ``run_dir`` (0 if not started)."""
    try:
        return int((Path(run_dir) / PROGRESS_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def run_tasks(task: Callable[..., object], payload, args: Sequence[tuple],
              run_dirs: Sequence[str | os.PathLike], names: Sequence[str], epochs: int,
              scheduler: str, progress: bool = True) -> None:
    """Run ``task(payload, *a, run_dir)`` for each ``a`` in ``args`` on a Dask cluster.

    Parameters
    ----------
    task : callable
        A module-level function (workers import it) that trains into its last argument,
        the run folder.
    payload : object
        What every task reads (the dataset); sent to each worker once.
    args : sequence of tuple
        The other arguments of each task.
    run_dirs : sequence of path
        One run folder per task, polled for progress.
    names : sequence of str
        Unique names of the tasks, shown in the bars and used as Dask keys.
    epochs : int
        Epochs per task (the length of each bar).
    scheduler : str
        ``"local"`` or a scheduler address (see the module docstring).
    progress : bool
        Show one bar per task.

    Raises
    ------
    Exception
        The first error of a task, after the others were cancelled.
    """
    with dask_client(scheduler, len(args)) as client:
        log.info("running %d tasks on %s", len(args), client)
        data = client.scatter(payload, broadcast=True)
        futures = [client.submit(task, data, *a, str(d), key=name, pure=False)
                   for a, d, name in zip(args, run_dirs, names)]
        # miniters=1: a bar redraws when its task finishes an epoch, not at every poll
        # (which would print every bar each second into a log file)
        bars = [tqdm(total=epochs, desc=name, position=i, disable=not progress, leave=True,
                     miniters=1) for i, name in enumerate(names)]
        try:
            while True:
                time.sleep(POLL_SECONDS)
                for bar, run_dir, future in zip(bars, run_dirs, futures):
                    seen = epochs if future.status == "finished" else read_progress(run_dir)
                    bar.update(max(0, min(seen, epochs) - bar.n))
                failed = [f for f in futures if f.status == "error"]
                if failed:
                    client.cancel([f for f in futures if not f.done()])
                    failed[0].result()  # raises the task's own exception
                if all(f.done() for f in futures):
                    break
        finally:
            for bar in bars:
                bar.close()
        for future in futures:
            future.result()
