"""Worker processes: independent pieces of training work run side by side on the CPU cores.

Training on a CPU has two kinds of work that split into independent pieces: the batches of the
feature pool (:mod:`kws.train.pool`) and the members of an ensemble (:mod:`kws.train.ensemble`).
Each piece is small enough that two threads on one piece run it only ~1.3x faster than one
thread, so one process per core, each on one thread, is faster than one process on all cores.

The processes are forked: they start with the parent's memory (loaded audio, the pool, the
validation features) without copying or pickling it, and only results travel back. Where fork
is not available (Windows), on a GPU (CUDA does not survive a fork), or with ``KWS_WORKERS=1``,
the pieces run one after another in this process. Results do not depend on the worker count
beyond float rounding: every piece draws from seeds of its own.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")
_TASK: Callable | None = None  # what forked workers call (inherited, never pickled)


def count(device: str | None = "cpu") -> int:
    """Worker processes to use: ``$KWS_WORKERS`` if set, else one per usable core; 1 on a GPU
    or where processes cannot be forked.

    Raises ValueError when ``$KWS_WORKERS`` is not a positive whole number."""
    raw = os.environ.get("KWS_WORKERS", "")
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"KWS_WORKERS={raw!r}: expected a whole number >= 1")
        wanted = int(raw)
    else:
        wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    if (device or "cpu").startswith("cuda") \
            or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return wanted


def _set_threads(threads: int) -> None:
    """This process's compute threads (torch, onnxruntime) from now on."""
    import torch

    from kws.features import embedding

    torch.set_num_threads(threads)
    embedding.limit_threads(threads)


def _one_thread() -> None:
    """Worker start: one compute thread each, so workers do not compete."""
    _set_threads(1)


def _call(job: tuple[int, int]):
    index, threads = job
    if threads > 1:
        _set_threads(threads)
    return _TASK(index)


def threads_per_piece(n: int, workers: int) -> list[int]:
    """Compute threads for each of ``n`` pieces on ``workers`` processes: one, except in a last
    round of fewer pieces than processes (five members on two cores: the fifth runs alone),
    whose pieces share the cores the others leave idle."""
    tail = n % workers
    return [workers // tail if tail and k >= n - tail else 1 for k in range(n)]


def fork_map(task: Callable[[int], T], indices: Sequence[int], workers: int,
             progress: Callable[[Iterable[T]], Iterable[T]] = iter) -> list[T]:
    """``[task(i) for i in indices]``, in ``workers`` forked processes when more than one; the
    results (which must pickle) come back in order. ``progress`` wraps the stream of results
    (a progress bar). An exception in a worker is raised here. Pieces run on one compute thread
    each, but for a last round with cores to spare (:func:`threads_per_piece`)."""
    global _TASK
    if workers <= 1 or len(indices) <= 1:
        return list(progress(task(i) for i in indices))
    _TASK = task
    processes = min(workers, len(indices))
    jobs = list(zip(indices, threads_per_piece(len(indices), processes)))
    try:
        with multiprocessing.get_context("fork").Pool(processes, initializer=_one_thread) as pool:
            return list(progress(pool.imap(_call, jobs)))
    finally:
        _TASK = None
