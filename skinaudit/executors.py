"""Where the per-image work of an audit runs: a local process pool (the default) or a Ray cluster.

An :class:`Executor` has two jobs:

- :meth:`Executor.map` runs a picklable module-level function over a list of jobs (the CPU
  stage: decoding, segmentation, artifacts, ITA) and returns the results in the jobs' order;
- :meth:`Executor.score` scores batches of image files with a model that is loaded once per
  worker (scores), and :meth:`Executor.warm_cams` fills the per-image cache with Grad-CAM++
  maps the same way (CAMs).

:class:`LocalExecutor` is the process pool of ``--jobs`` (model work in this process).
:class:`RayExecutor` runs the CPU stage as Ray tasks (streamed: a bounded window of chunks in
flight, results collected in order) and the model stages on a Ray Data actor pool
(``map_batches`` with a callable class: one model copy per actor, ``num_gpus=1`` per actor
when the model is on CUDA). Ray is imported only when a :class:`RayExecutor` starts; a local
cluster started by skinaudit is shut down when the executor closes (also on an error or
Ctrl-C) and, should this process be killed outright, by a reaper process
(:mod:`skinaudit._ray_reaper`).

The statistics never run here: they run on the driver, from the per-image rows, which both
executors return in the same order with the same values, so every output file is the same
byte for byte whichever executor ran the audit.
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

from .errors import ConfigError, MissingDependencyError
from .models import score_batch as _score_batch, score_batches
from .validation import check_choice, check_int

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "EXECUTORS", "make_executor", "open_executor"]

log = logging.getLogger(__name__)

#: The executors an audit can run on.
EXECUTORS = ("local", "ray")


def _one_blas_thread(parent: int | None = None):
    """Worker initialiser: one BLAS thread per worker process (the processes already use the
    cores; BLAS threads on top of them made the small products of the per-image bootstrap
    (:mod:`~skinaudit.skintone.uncertainty`) 3-4x slower on 2 cores, docs/skintone.md), and a
    worker never outlives the process that started it (:func:`skinaudit._workers.die_with_parent`)."""
    from ._workers import die_with_parent

    if parent is not None:
        die_with_parent(parent)  # first: the parent may be killed while this worker starts
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _chunksize(n_jobs: int, workers: int) -> int:
    return max(1, min(32, n_jobs // (4 * workers)))


def _pool_context(uses_torch: bool):
    """The multiprocessing context of the local workers: the platform's default, except ``spawn``
    when the workers run torch and this process has imported it already. A forked child of a
    process whose torch thread pools have run (scoring a model, say) can wait forever on a lock held
    by a thread that was not forked; a spawned child starts a fresh interpreter (about a second
    more per worker)."""
    import multiprocessing
    import sys

    return multiprocessing.get_context("spawn") if uses_torch and "torch" in sys.modules else None


class Executor:
    """The interface of an executor (see the module docstring); a context manager that closes it."""

    name = "executor"

    def map(self, worker, jobs: list, *, desc: str = "", progress=None, uses_torch: bool = False) -> list:
        """``[worker(job) for job in jobs]``, in that order. ``uses_torch``: the worker runs torch
        (the learned segmenter or artifact detector), which a forked worker must not (see
        :func:`_pool_context`)."""
        raise NotImplementedError

    def score(self, model, batches: list[list[str]], *, desc: str = "", progress=None):
        """Yield ``(scores, statuses)`` for each batch of image paths, in order; the model sees
        each batch exactly as given (so a batch's scores do not depend on the executor)."""
        raise NotImplementedError

    def warm_cams(self, model, chunks, *, config, cache) -> None:
        """Store the Grad-CAM++ maps of ``chunks`` (``(target, paths)`` pairs, each one call of
        :func:`skinaudit.per_image.cached_cams`) in ``cache`` ahead of the explanation stage;
        a no-op where the stage computes them itself."""

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class LocalExecutor(Executor):
    """The local process pool: ``n_jobs`` processes for the CPU stage (one BLAS thread each, each
    ends with this process), the model in this process. Fewer than 8 jobs, or ``n_jobs == 1``,
    run in this process.

    ``keep_pool``: keep the worker processes between calls of :meth:`map` until :meth:`close`
    (an audit's skin-tone rows and its ITA variants then share one pool: workers that import torch
    and load the learned networks once, not once per pass); :func:`open_executor` sets it, since it
    always closes. A pool that raised or was interrupted is never reused."""

    name = "local"

    def __init__(self, n_jobs: int = 2, *, keep_pool: bool = False):
        self.n_jobs = check_int(n_jobs, "n_jobs", low=1)
        self.keep_pool = bool(keep_pool)
        self._pool, self._pool_key = None, None

    def map(self, worker, jobs, *, desc="", progress=None, uses_torch=False):
        if self.n_jobs == 1 or len(jobs) < 8:
            it = map(worker, jobs)
            it = it if progress is None else progress(it, total=len(jobs), desc=desc)
            return list(it)
        workers = min(self.n_jobs, len(jobs))  # more processes than images would only sit idle (--jobs 100000)
        context = _pool_context(uses_torch)
        if not self.keep_pool:
            with self._new_pool(workers, context) as ex:
                return self._run(ex, worker, jobs, workers, desc, progress)
        key = context.get_start_method() if context is not None else None
        if self._pool is None or self._pool_key[0] != key or self._pool_key[1] < workers:
            self.close()
            self._pool, self._pool_key = self._new_pool(workers, context), (key, workers)
        try:
            return self._run(self._pool, worker, jobs, workers, desc, progress)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _new_pool(workers, context):
        return ProcessPoolExecutor(max_workers=workers, initializer=_one_blas_thread, initargs=(os.getpid(),),
                                   mp_context=context)

    @staticmethod
    def _run(ex, worker, jobs, workers, desc, progress):
        it = ex.map(worker, jobs, chunksize=_chunksize(len(jobs), workers))
        it = it if progress is None else progress(it, total=len(jobs), desc=desc)
        return list(it)

    def close(self):
        pool, self._pool, self._pool_key = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def score(self, model, batches, *, desc="", progress=None):
        return score_batches(model, batches, desc=desc, progress=progress)


# --- Ray -----------------------------------------------------------------------------------------

#: Chunks of jobs in flight per CPU of the cluster (bounds what the driver holds: streaming).
_WINDOW_PER_CPU = 4
_BLAS_LIMITED = []
#: Most Ray Data blocks of a model stage (each block: consecutive batches, one actor call per batch).
_MAX_BLOCKS = 256


def _ray_chunk(worker, jobs):
    """One Ray task: a chunk of jobs, in a worker limited to one BLAS thread (as the local pool)."""
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        _BLAS_LIMITED.append(True)
    return [worker(job) for job in jobs]


def _raise_cause(exc: BaseException):
    """Re-raise the skinaudit error (an unreadable image in strict mode, a model that fails) that
    a Ray task or actor raised, as itself: Ray wraps it with the remote traceback, which the CLI
    would print as a many-line message; any other error is re-raised as it came."""
    from .errors import SkinauditError

    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, SkinauditError) and type(cause).__module__.startswith("skinaudit"):
            raise cause.with_traceback(None) from None
        cause = getattr(cause, "cause", None) or cause.__cause__
    raise exc


def _get(ray, ref):
    try:
        return ray.get(ref)
    except Exception as exc:  # noqa: BLE001 - re-raised, as skinaudit's own error where it is one
        _raise_cause(exc)


class _ScoreActor:
    """A Ray Data actor: holds one copy of the model for its lifetime; scores one batch per row."""

    def __init__(self, model):
        self.model = model

    def __call__(self, row):
        scores, status = _score_batch(self.model, list(row["paths"]))
        return {"batch": row["batch"], "scores": scores, "status": status}


class _CamActor:
    """A Ray Data actor: holds one copy of the model; computes the CAMs of one chunk per row and
    stores them in the (shared) per-image cache, atomically."""

    def __init__(self, model, config, cache_root):
        from .cache import ResultCache

        self.model, self.config, self.cache = model, config, ResultCache(cache_root)

    def __call__(self, row):
        from .imageio import read_image
        from .per_image import cached_cams

        paths = list(row["paths"])
        cached_cams(self.model, [read_image(p) for p in paths], paths, target=row["target"],
                    config=self.config, cache=self.cache)
        return {"chunk": row["chunk"]}


def actor_options(model, n_actors: int) -> dict:
    """Ray Data ``map_batches``/``map`` options of the model actor pool: ``concurrency`` actors,
    each with one GPU when the model is on CUDA (``--device cuda``), else one CPU."""
    device = str(getattr(model, "device", "cpu"))
    if device.startswith("cuda"):
        return {"concurrency": n_actors, "num_gpus": 1}
    return {"concurrency": n_actors, "num_cpus": 1}


class RayExecutor(Executor):
    """Ray: the CPU stage as tasks, the model stages on a Ray Data actor pool.

    Parameters
    ----------
    n_jobs : int, >= 1
        CPUs of the local cluster started here (``address`` None), and the number of model
        actors on a CPU cluster. Ignored for the size of a cluster given by ``address``, whose
        CPUs are used.
    address : str, optional
        A running cluster (``"ray://host:10001"``, ``"host:6379"`` or ``"auto"``); default: a
        local cluster on this machine, started on first use and stopped by :meth:`close`.
    """

    name = "ray"

    def __init__(self, n_jobs: int = 2, address: str | None = None):
        import importlib.util

        if importlib.util.find_spec("ray") is None:  # fail before any work, not at the first image
            raise MissingDependencyError("ray", "ray", "--executor ray")
        self.n_jobs = check_int(n_jobs, "n_jobs", low=1)
        self.address = address
        self._ray = None
        self._owned = False
        self._reaper = None

    # lifecycle
    def _start(self):
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray", "--executor ray") from None
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if self.address is None:  # a local cluster on this machine of n_jobs CPUs
                kwargs.update(num_cpus=self.n_jobs)
                self._reaper = _start_reaper()  # first: this process may be killed while the cluster starts
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                self.close()
                raise ConfigError(f"cannot start or reach the Ray cluster at {self.address or 'a local cluster'} "
                                  f"({str(exc).splitlines()[0][:200]})") from None
            except BaseException:
                self.close()
                raise
            self._owned = True
        self._ray = ray
        try:
            self._quiet_data()
        except BaseException:
            self.close()
            raise
        return ray

    @staticmethod
    def _quiet_data():
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        for name in ("ray.data", "ray"):
            logging.getLogger(name).setLevel(logging.WARNING)

    def close(self):
        ray, self._ray = self._ray, None
        if ray is not None and self._owned:
            ray.shutdown()
            self._owned = False
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.kill()
            reaper.wait()

    def _cpus(self) -> int:
        ray = self._start()
        return max(1, int(ray.cluster_resources().get("CPU", self.n_jobs)))

    # the CPU stage
    def map(self, worker, jobs, *, desc="", progress=None, uses_torch=False):  # Ray workers are fresh processes
        it = self._iter_map(worker, jobs)
        it = it if progress is None else progress(it, total=len(jobs), desc=desc)
        return list(it)

    def _iter_map(self, worker, jobs):
        """Rows in job order, with at most a window of chunks in flight (streaming)."""
        if not jobs:
            return
        ray = self._start()
        cpus = self._cpus()
        size = _chunksize(len(jobs), cpus)
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_chunk)
        window = _WINDOW_PER_CPU * cpus
        pending = []  # object refs of the chunks in flight, in job order
        try:
            for start in range(0, len(jobs), size):
                pending.append(task.remote(worker, jobs[start:start + size]))
                if len(pending) >= window:
                    yield from _get(ray, pending.pop(0))
            while pending:
                yield from _get(ray, pending.pop(0))
        finally:
            for ref in pending:  # an error or Ctrl-C: stop the chunks still queued
                ray.cancel(ref, force=True)

    # the model stages
    def _actors(self, model) -> int:
        """Model actors: at most ``n_jobs``, and no more than the cluster's GPUs (CUDA) or CPUs."""
        ray = self._start()
        if "num_gpus" in actor_options(model, 1):
            gpus = int(ray.cluster_resources().get("GPU", 0))
            if gpus < 1:
                raise ConfigError("the model is on CUDA (--device cuda) but the Ray cluster has no GPU; start its "
                                  "nodes with GPUs (ray start --num-gpus N) or score with --device cpu")
            return max(1, min(self.n_jobs, gpus))
        return max(1, min(self.n_jobs, self._cpus()))

    def _on_actors(self, model, items, actor, kwargs):
        """The rows of ``actor(**kwargs)(item)`` for each item, streamed from a Ray Data actor pool
        (in any order: each row carries its index)."""
        ray = self._start()
        n = min(self._actors(model), len(items))
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), _MAX_BLOCKS))
        rows = ds.map(actor, fn_constructor_kwargs=kwargs, **actor_options(model, n)).iter_rows()
        try:
            yield from rows
        except Exception as exc:  # noqa: BLE001 - re-raised, as skinaudit's own error where it is one
            _raise_cause(exc)

    def score(self, model, batches, *, desc="", progress=None):
        if not batches:
            return
        items = [{"batch": b, "paths": [str(p) for p in paths]} for b, paths in enumerate(batches)]
        it = self._on_actors(model, items, _ScoreActor, {"model": model})
        it = it if progress is None else progress(it, total=len(batches), desc=desc)
        done, nxt = {}, 0
        for row in it:  # rows come as actors finish; yield them in batch order
            done[int(row["batch"])] = (list(row["scores"]), list(row["status"]))
            while nxt in done:
                yield done.pop(nxt)
                nxt += 1

    def warm_cams(self, model, chunks, *, config, cache):
        identity = getattr(model, "cache_params", lambda: None)
        if cache is None or identity() is None or not chunks:
            return  # no shared cache to fill: the stage computes its maps itself
        items = [{"chunk": k, "target": target, "paths": [str(p) for p in paths]}
                 for k, (target, paths) in enumerate(chunks)]
        for _ in self._on_actors(model, items, _CamActor,
                                 {"model": model, "config": config, "cache_root": str(cache.root)}):
            pass


def _start_reaper():
    """The guard of a local cluster: a process in its own session that, once this process is
    gone (even by SIGKILL), kills every Ray process this one started (Linux; elsewhere Ray's own
    fate sharing is all there is)."""
    if not os.path.isdir("/proc/self"):
        return None
    # the file itself, not ``-m skinaudit._ray_reaper``: the guard needs only the standard library,
    # and importing the package (numpy, pandas) would cost a second of CPU at every start
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ray_reaper.py")
    return subprocess.Popen([sys.executable, "-I", script, str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def make_executor(kind: str = "local", *, n_jobs: int = 2, address: str | None = None,
                  keep_pool: bool = False) -> Executor:
    """The executor named ``kind`` (``"local"`` or ``"ray"``); ``address`` only with Ray;
    ``keep_pool``: the local pool lives until ``close()`` (:class:`LocalExecutor`)."""
    check_choice(kind, "executor", EXECUTORS)
    if kind == "local":
        if address is not None:
            raise ConfigError("the 'ray_address' parameter needs executor='ray'; got executor='local'")
        return LocalExecutor(n_jobs, keep_pool=keep_pool)
    return RayExecutor(n_jobs, address)


@contextlib.contextmanager
def open_executor(kind: str = "local", *, n_jobs: int = 2, address: str | None = None):
    """:func:`make_executor` as a context manager that always closes it (error and Ctrl-C too)."""
    ex = make_executor(kind, n_jobs=n_jobs, address=address, keep_pool=True)
    try:
        yield ex
    finally:
        ex.close()
