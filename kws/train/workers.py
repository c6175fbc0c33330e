"""Worker processes: independent pieces of training work run side by side on the CPU cores.

Training on a CPU has two kinds of work that split into independent pieces: the batches of the
feature pool (:mod:`kws.train.pool`) and the members of an ensemble (:mod:`kws.train.ensemble`).
Each piece is small enough that two threads on one piece run it only ~1.3x faster than one
thread, so one process per core, each on one thread, is faster than one process on all cores.

The processes are forked: they start with the parent's memory (loaded audio, the pool, the
validation features) without copying or pickling it, and only results travel back. Where fork
is not available (Windows) or with ``KWS_WORKERS=1``, the pieces run one after another in this
process. On a GPU, members are forked too, each process starting CUDA for itself, as long as
this process has not started CUDA (CUDA does not survive a fork): the run's device is found
without starting it (:func:`default_device`), and what members share is made on the CPU. Results do
not depend on the worker count beyond float rounding: every piece draws from seeds of its own.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")
_TASK: Callable | None = None  # what forked workers call (inherited, never pickled)


def default_device() -> str:
    """"cuda" when torch sees a CUDA GPU, else "cpu". Asked through NVML, which leaves CUDA
    unstarted in this process (``torch.cuda.device_count``; ``is_available`` would start it), so
    that worker processes forked later can start it themselves."""
    import torch

    return "cuda" if torch.cuda.device_count() > 0 else "cpu"


def count(device: str | None = "cpu") -> int:
    """Worker processes for work on ``device``: ``$KWS_WORKERS`` if set, else one per usable
    core; 1 where processes cannot be forked, and for work on a GPU once this process has
    started CUDA.

    Raises ValueError when ``$KWS_WORKERS`` is not a positive whole number."""
    raw = os.environ.get("KWS_WORKERS", "")
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"KWS_WORKERS={raw!r}: expected a whole number >= 1")
        wanted = int(raw)
    else:
        wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if (device or "cpu").startswith("cuda"):
        import torch

        return 1 if torch.cuda.is_initialized() else wanted
    return wanted


def _one_thread() -> None:
    """Worker start: one compute thread each (torch, onnxruntime), so workers do not compete.
    Never more in a forked worker: torch's OpenMP threads, started in the parent, do not exist
    in the child, and a child that asked for two hung in its first parallel operation (a fifth
    member was given the core the others left idle: it never finished)."""
    import torch

    from kws.features import embedding

    torch.set_num_threads(1)
    embedding.limit_threads(1)


def _call(index: int):
    return _TASK(index)


def fork_map(task: Callable[[int], T], indices: Sequence[int], workers: int,
             progress: Callable[[Iterable[T]], Iterable[T]] = iter) -> list[T]:
    """``[task(i) for i in indices]``, in ``workers`` forked processes when more than one; the
    results (which must pickle) come back in order. ``progress`` wraps the stream of results
    (a progress bar). An exception in a worker is raised here."""
    global _TASK
    if workers <= 1 or len(indices) <= 1:
        return list(progress(task(i) for i in indices))
    _TASK = task
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(indices)),
                                                      initializer=_one_thread) as pool:
            return list(progress(pool.imap(_call, indices)))
    finally:
        _TASK = None
