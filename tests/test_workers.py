"""Worker processes: pieces of training work side by side, in order, errors surfaced, the
count from the cores or ``KWS_WORKERS``."""

import os
import signal

import pytest

from kws.cli import exit_cleanly_on_sigterm, exit_on_sigterm
from kws.train import workers

torch = pytest.importorskip("torch", reason="training needs the train extra")


def pid_of(i: int) -> tuple[int, int]:
    return i * i, os.getpid()


def test_pieces_run_in_other_processes_and_come_back_in_order(monkeypatch):
    monkeypatch.setenv("KWS_WORKERS", "2")
    got = workers.fork_map(pid_of, range(6), workers.count())
    assert [r for r, _ in got] == [0, 1, 4, 9, 16, 25]
    assert os.getpid() not in {pid for _, pid in got}


def test_one_worker_runs_here():
    got = workers.fork_map(pid_of, [3, 1], 1)
    assert got == [(9, os.getpid()), (1, os.getpid())]


def test_progress_sees_every_result():
    seen = []
    workers.fork_map(pid_of, range(4), 2, lambda results: (seen.append(r) or r for r in results))
    assert [r for r, _ in seen] == [0, 1, 4, 9]


def failing(i: int) -> int:
    if i == 2:
        raise ValueError(f"piece {i} is bad")
    return i


def test_an_error_in_a_worker_is_raised_here():
    with pytest.raises(ValueError, match="piece 2 is bad"):
        workers.fork_map(failing, range(4), 2)


def test_the_count_follows_kws_workers_and_is_one_on_a_gpu_once_cuda_started(monkeypatch):
    monkeypatch.setenv("KWS_WORKERS", "3")
    assert workers.count("cpu") == 3 and workers.count("cuda:0") == 3
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert workers.count("cpu") == 3 and workers.count("cuda:0") == 1
    monkeypatch.delenv("KWS_WORKERS")
    assert workers.count() == len(os.sched_getaffinity(0))
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("KWS_WORKERS", bad)
        with pytest.raises(ValueError, match=rf"KWS_WORKERS='{bad}': expected a whole number"):
            workers.count()


def sigterm_action(i: int) -> str:
    action = signal.getsignal(signal.SIGTERM)
    return "default" if action is signal.SIG_DFL else repr(action)


def test_a_commands_forked_workers_keep_the_default_sigterm():
    """``kws`` turns SIGTERM into SystemExit so its helper programs stop with it; its forked
    workers must keep the default (end at once): a Python handler there can miss a SIGTERM
    that lands just before a blocking wait, and the pool's terminate then waits for ever."""
    saved = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        exit_cleanly_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) is exit_on_sigterm
        assert workers.fork_map(sigterm_action, range(2), 2) == ["default", "default"]
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_the_default_device_is_found_without_starting_cuda(monkeypatch):
    def starts_cuda():
        raise AssertionError("torch.cuda.is_available() starts CUDA: forked members would fail")

    monkeypatch.setattr(torch.cuda, "is_available", starts_cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert workers.default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert workers.default_device() == "cpu"
