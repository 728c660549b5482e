"""CallPool: the thread pool each call runs on (server.py), with its own daemon workers."""

from __future__ import annotations

import threading

import pytest

from services.common.server import CallPool


def test_it_counts_the_calls_it_holds_and_runs_them_on_its_threads() -> None:
    pool = CallPool(2, "t")
    release = threading.Event()
    running = [pool.submit(release.wait, 30) for _ in range(3)]  # 2 run, 1 queued
    assert pool.held == 3
    assert len(pool.threads()) == 2 and all(t.name.startswith("t_") for t in pool.threads())
    release.set()
    assert [f.result(timeout=10) for f in running] == [True, True, True]
    assert pool.held == 0
    assert pool.submit(lambda: threading.current_thread().name).result(timeout=10).startswith("t_")
    assert len(pool.threads()) == 2  # an idle worker took it
    pool.shutdown()


def test_an_exception_is_the_futures_and_the_worker_goes_on() -> None:
    pool = CallPool(1, "t")

    def fail() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError):
        pool.submit(fail).result(timeout=10)
    assert pool.submit(lambda: 1).result(timeout=10) == 1
    assert pool.held == 0
    pool.shutdown()


def test_shutdown_cancels_the_queued_calls_and_refuses_new_ones() -> None:
    pool = CallPool(1, "t")
    release = threading.Event()
    running = pool.submit(release.wait, 30)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    release.set()
    assert running.result(timeout=10) is True
    assert pool.held == 0
    for worker in pool.threads():
        worker.join(timeout=10)
        assert not worker.is_alive()


def test_a_pool_dropped_without_shutdown_ends_its_idle_workers() -> None:
    """Its workers hold no reference to it (as ThreadPoolExecutor's): a pool nobody
    holds any more (a test's server, never drained) does not leave threads behind."""
    import gc

    pool = CallPool(2, "dropped")
    assert pool.submit(lambda: 1).result(timeout=10) == 1
    workers = pool.threads()
    del pool
    gc.collect()
    for worker in workers:
        worker.join(timeout=10)
        assert not worker.is_alive()
