"""Lazy[T]: a thread-safe resource loaded once, in the background or on first use.

Double-checked locking: `get()` takes no lock once the value is ready. A failed load keeps its
error (re-raised by `get()`, shown by `state`/`error`) until `retry()` or the next `start()`.
This module knows nothing about models or indexes; the loader is any zero-argument callable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

PartState = Literal["idle", "loading", "ready", "failed"]
IDLE: PartState = "idle"
LOADING: PartState = "loading"
READY: PartState = "ready"
FAILED: PartState = "failed"


class Lazy(Generic[T]):
    def __init__(self, name: str, loader: Callable[[], T]):
        self.name = name
        self._loader = loader
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._value: T | None = None
        self._state: PartState = IDLE
        self._error: BaseException | None = None
        self.load_seconds: float | None = None

    @property
    def state(self) -> PartState:
        return self._state

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def ready(self) -> bool:
        return self._state == READY

    def start(self) -> None:
        """Begin loading in a daemon thread unless already loading or ready."""
        with self._lock:
            if self._state in (LOADING, READY):
                return
            self._state, self._error = LOADING, None
        threading.Thread(target=self._load, name=f"lazy-{self.name}", daemon=True).start()

    def start_if_idle(self) -> None:
        """Begin loading in the background if nobody has tried yet; a failure stays failed."""
        if self._state == IDLE:
            self.start()

    def retry(self) -> None:
        """Forget a failure and load again in the background."""
        self.start()

    def get(self, timeout: float | None = None) -> T:
        """The value, loading it in this thread if nobody has started; waits at most `timeout` seconds.

        Raises the loader's error if the load failed, TimeoutError if it is still loading.
        """
        if self._state == READY:  # fast path, no lock
            return self._value  # type: ignore[return-value]
        with self._lock:
            if self._state == IDLE:
                self._state = LOADING
                load_here = True
            else:
                load_here = False
        if load_here:
            self._load()
        with self._lock:
            if not self._done.wait_for(lambda: self._state in (READY, FAILED), timeout):
                raise TimeoutError(f"{self.name} is still loading after {timeout:.1f}s")
            if self._state == FAILED:
                raise self._error  # type: ignore[misc]
            return self._value  # type: ignore[return-value]

    def peek(self) -> T | None:
        """The value if ready, else None; never waits."""
        return self._value if self._state == READY else None

    def _load(self) -> None:
        began = time.perf_counter()
        try:
            value = self._loader()
        except BaseException as exc:  # kept and re-raised by get(); the loader's own type survives
            with self._lock:
                self._error, self._state = exc, FAILED
                self.load_seconds = time.perf_counter() - began
                self._done.notify_all()
            return
        with self._lock:
            self._value, self._state = value, READY
            self.load_seconds = time.perf_counter() - began
            self._done.notify_all()
