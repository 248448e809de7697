"""Where a sweep's runs execute: this process, a local process pool, or a dask.distributed cluster.

Public names: InProcess, ProcessPool, DaskCluster, stream, describe.

Contract:
- A backend has `slots` (how many runs it executes at once), submit(job, fn, *args),
  inflight() (submitted, not yet reported), finished() (blocks until at least one run has
  finished and returns [(job, ok, value)]: value is fn's return value, or when ok is False one
  line saying what went wrong) and close(abort=False). Used as a context manager it closes
  itself, aborting (cancelling what is queued, stopping its own worker processes) when the
  block ends with an exception such as KeyboardInterrupt.
- stream(backend, fn, feed) submits what feed(room) gives (at most `room` jobs, keeping about
  two per slot in flight so results stream back and an interrupt loses little) and yields
  (job, ok, value) in order of completion until feed gives nothing and nothing is in flight.
  feed is called again after every batch of results, so what to run next may depend on them.
- InProcess runs each job in this process when its result is asked for (workers = 1).
- ProcessPool(workers): concurrent.futures.ProcessPoolExecutor. Its workers ignore SIGINT (a
  Ctrl-C on the terminal reaches the whole process group; the parent alone decides). If a
  worker process dies, the pool is rebuilt and every unfinished job is submitted again; a job
  whose pool broke RETRIES times is reported as failed.
- DaskCluster(address) connects to an existing dask.distributed scheduler (`tcp://HOST:PORT`),
  DaskCluster(None, workers) starts a local cluster of that many one-thread worker processes
  (with glibc's own malloc settings: LOCAL_MALLOC) and stops it on close. The scheduler
  re-runs the tasks of a worker that dies (its `allowed-failures`, 3 by default); a task that
  killed that many workers comes back as failed.
  close() cancels this client's unfinished tasks and disconnects; it never stops a cluster it
  did not start. Functions are sent by reference: the workers need relaysim installed.
Errors: ScenarioError (key --scheduler) when dask.distributed is not installed or the scheduler
cannot be reached within connect_timeout seconds; both happen before any job is submitted.
"""

from __future__ import annotations

import signal
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from sim.errors import ScenarioError

RETRIES = 3
# dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap
# threshold at 128 kB: every larger numpy array is then mmap'd and unmapped afresh, and a run
# costs about 27 % more CPU (measured: 5.6 s against 4.4 s for the same 8 runs). A local
# cluster's workers keep glibc's defaults, like the pool's and `relaysim run`'s processes.
LOCAL_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def describe(e: BaseException) -> str:
    """One line naming an exception: 'ValueError: text'."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Backend:
    slots = 1

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(abort=exc_type is not None)
        return False


class InProcess(_Backend):
    """Runs jobs one at a time in this process (see the module contract)."""

    def __init__(self):
        self._queue: deque = deque()

    def submit(self, job, fn, *args):
        self._queue.append((job, fn, args))

    def inflight(self) -> int:
        return len(self._queue)

    def finished(self) -> list:
        job, fn, args = self._queue.popleft()
        try:
            return [(job, True, fn(*args))]
        except Exception as e:  # a failed run is reported, the sweep goes on
            if _interrupted(e):
                raise KeyboardInterrupt from e
            return [(job, False, describe(e))]

    def close(self, abort: bool = False):
        self._queue.clear()


def _interrupted(e: BaseException) -> bool:
    """True for an exception that a Ctrl-C caused: a KeyboardInterrupt that arrived while
    compiled code ran surfaces as numba's SystemError ("returned a result with an exception
    set") with the KeyboardInterrupt as its context."""
    while e is not None:
        if isinstance(e, KeyboardInterrupt):
            return True
        e = e.__cause__ or e.__context__
    return False


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessPool(_Backend):
    """A local process pool that survives the death of a worker (see the module contract)."""

    def __init__(self, workers: int):
        self.slots = max(1, int(workers))
        self._pool = self._new()
        self._futs: dict = {}  # future -> (job, fn, args, broken pools so far)

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.slots, initializer=_ignore_sigint)

    def submit(self, job, fn, *args, _tries: int = 0):
        self._futs[self._pool.submit(fn, *args)] = (job, fn, args, _tries)

    def inflight(self) -> int:
        return len(self._futs)

    def finished(self) -> list:
        done, _ = wait(list(self._futs), return_when=FIRST_COMPLETED)
        out, broken = [], False
        for f in done:
            job, fn, args, tries = self._futs[f]
            try:
                value = f.result()
            except BrokenProcessPool:
                broken = True
                continue
            except Exception as e:
                out.append((job, False, describe(e)))
            else:
                out.append((job, True, value))
            del self._futs[f]
        if broken:
            # A worker died: this pool can run nothing more. Every job not yet reported goes
            # to a new pool (a run's result does not depend on where or how often it ran).
            again = list(self._futs.values())
            self._futs.clear()
            self._stop(self._pool)
            self._pool = self._new()
            for job, fn, args, tries in again:
                if tries + 1 >= RETRIES:
                    out.append((job, False, f"its worker process died ({RETRIES} times)"))
                else:
                    self.submit(job, fn, *args, _tries=tries + 1)
        return out

    @staticmethod
    def _stop(pool: ProcessPoolExecutor):
        # Python 3.14 has pool.terminate_workers(); before it the processes are only reachable
        # through this attribute.
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)

    def close(self, abort: bool = False):
        if abort:
            self._stop(self._pool)
        else:
            self._pool.shutdown(wait=True)
        self._futs.clear()


class DaskCluster(_Backend):
    """Runs on a dask.distributed cluster: an existing one, or a local one it starts."""

    def __init__(self, address: str | None, workers: int = 1, connect_timeout: float = 5.0):
        try:
            import dask
            from distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise ScenarioError("--scheduler", address or "local", "the sweep extra installed "
                                "(pip install 'relaysim[sweep]': dask.distributed)") from None
        self._cluster = None
        try:
            if address is None:
                with dask.config.set(LOCAL_MALLOC):
                    self._cluster = LocalCluster(n_workers=max(1, int(workers)),
                                                 threads_per_worker=1, processes=True,
                                                 dashboard_address=None, host="127.0.0.1")
                address = self._cluster.scheduler_address
            self.client = Client(address, timeout=f"{connect_timeout}s", set_as_default=False)
        except Exception as e:  # dask raises OSError, TimeoutError or ValueError here
            if self._cluster is not None:
                self._cluster.close()
            raise ScenarioError("--scheduler", address, "the address of a running dask "
                                f"scheduler, tcp://HOST:PORT ({describe(e)[:200]})") from None
        self.slots = max(1, sum(self.client.nthreads().values()))
        self._futs: dict = {}
        self._done = as_completed(loop=self.client.loop)  # this client's, not a default one

    def submit(self, job, fn, *args):
        f = self.client.submit(fn, *args, pure=False)
        self._futs[f] = job
        self._done.add(f)

    def inflight(self) -> int:
        return len(self._futs)

    def finished(self) -> list:
        done = [next(self._done), *self._done.next_batch(block=False)]
        out = []
        for f in done:
            job = self._futs.pop(f)
            if f.status == "finished":
                out.append((job, True, f.result()))
            elif f.status == "error":  # an exception in the run, or KilledWorker
                out.append((job, False, describe(f.exception())))
            else:  # cancelled: the connection to the scheduler was lost
                out.append((job, False, f"dask task {f.status} (scheduler connection lost?)"))
            f.release()
        return out

    def close(self, abort: bool = False):
        if self._futs:
            self.client.cancel(list(self._futs))
            self._futs.clear()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def stream(backend, fn: Callable, feed: Callable[[int], Iterable]):
    """Submit what feed gives and yield (job, ok, value) as runs finish (module contract)."""
    while True:
        room = 2 * backend.slots - backend.inflight()
        if room > 0:
            for job, args in feed(room):
                backend.submit(job, fn, *args)
        if not backend.inflight():
            return
        yield from backend.finished()
