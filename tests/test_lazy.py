import threading
import time

import pytest

from rag.lazy import Lazy


def test_sixteen_threads_load_once():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return object()

    lazy = Lazy("slow", slow)
    results, barrier = [], threading.Barrier(16)

    def worker():
        barrier.wait()
        results.append(lazy.get(timeout=10))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 16 and all(r is results[0] for r in results)
    assert lazy.state == "ready" and lazy.load_seconds >= 0.3


def test_background_start_returns_at_once_and_reports_state():
    gate = threading.Event()
    lazy = Lazy("gated", lambda: gate.wait(5) and "value")
    began = time.perf_counter()
    lazy.start()
    assert time.perf_counter() - began < 0.1
    assert lazy.state == "loading" and lazy.peek() is None
    with pytest.raises(TimeoutError):
        lazy.get(timeout=0.05)
    gate.set()
    assert lazy.get(timeout=5) == "value" and lazy.state == "ready"


def test_failure_is_kept_reraised_and_retryable():
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("disk not mounted")
        return 42

    lazy = Lazy("flaky", flaky)
    lazy.start()
    with pytest.raises(ValueError, match="disk not mounted"):
        lazy.get(timeout=5)
    assert lazy.state == "failed" and isinstance(lazy.error, ValueError)
    with pytest.raises(ValueError):  # still failed: no silent reload on get()
        lazy.get(timeout=1)
    lazy.retry()
    assert lazy.get(timeout=5) == 42 and lazy.error is None and len(attempts) == 2
