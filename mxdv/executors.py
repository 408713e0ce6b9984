"""Where regression jobs run: Dask ``distributed``.

* ``--executor local`` (default): a :class:`distributed.LocalCluster` of ``--jobs`` worker
  processes with one thread each, on this machine.
* ``--scheduler ADDRESS``: an existing Dask scheduler (``tcp://host:8786``), for example one
  started by ``dask-jobqueue`` on Slurm or LSF (see ``docs/dask_clusters.md``).

Jobs are submitted as :func:`mxdv.job_exec.execute_job` calls; results come back in completion
order. A job whose worker process dies is not retried (``allowed-failures`` 0 on the local
cluster; set the same in a remote scheduler's config): it comes back as a failed result,
never lost.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Callable, Iterable, Iterator


class ExecutorError(RuntimeError):
    """The executor cannot start (scheduler unreachable, Dask missing)."""


class DaskExecutor:
    def __init__(self, workers: int = 2, scheduler: str | None = None, connect_timeout_s: float = 10.0):
        self.workers = max(1, workers)
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self.client = None
        self.cluster = None

    @property
    def description(self) -> str:
        if self.scheduler:
            return f"dask scheduler {self.scheduler}"
        return f"dask LocalCluster, {self.workers} worker processes"

    def __enter__(self) -> "DaskExecutor":
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency of mxdv
            raise ExecutorError(f"dask distributed is not installed ({exc}); run `make install`") from exc
        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout=f"{self.connect_timeout_s}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ExecutorError(f"--scheduler {self.scheduler}: cannot connect to a Dask scheduler there "
                                    f"({type(exc).__name__}: {exc})") from exc
            return self
        with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                              "distributed.worker.daemon": False}), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "port 8787 is in use": another cluster on this machine
            # daemon=False: a worker may start child processes (each job runs in one).
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.client is not None:
                self.client.close(timeout=10)
        with contextlib.suppress(Exception):
            if self.cluster is not None:
                self.cluster.close(timeout=10)
        self.client = self.cluster = None

    def map_unordered(self, fn: Callable, items: Iterable, key: Callable = str) -> Iterator[tuple[object, object, BaseException | None]]:
        """Submit ``fn(item)`` for every item; yield ``(item, result, exception)`` as each ends.

        On an exception in the caller (Ctrl-C), every job still pending is cancelled."""
        from distributed import as_completed

        items = list(items)
        futures = {}
        for i, item in enumerate(items):
            fut = self.client.submit(fn, item, key=f"mxdv-{i}-{key(item)}", pure=False, retries=0)
            futures[fut] = item
        done = set()
        try:
            for fut in as_completed(list(futures)):
                done.add(fut)
                try:
                    yield futures[fut], fut.result(), None
                except Exception as exc:  # KilledWorker, CancelledError, an exception in fn
                    yield futures[fut], None, exc
        finally:
            pending = [f for f in futures if f not in done]
            if pending:
                with contextlib.suppress(Exception):
                    self.client.cancel(pending, force=True)


def make_executor(kind: str, workers: int, scheduler: str | None) -> DaskExecutor:
    if scheduler:
        return DaskExecutor(workers, scheduler=scheduler)
    if kind != "local":
        raise ValueError(f"--executor {kind!r}: known executors are 'local' (a Dask LocalCluster); "
                         f"use --scheduler ADDRESS for an existing Dask cluster")
    return DaskExecutor(workers)
