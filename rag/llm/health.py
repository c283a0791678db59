"""Per-server health: a circuit breaker and a rolling record of latency and errors.

Breaker: after `threshold` consecutive failures it opens and the server is skipped for `cooldown_s`;
then one caller probes it (a cheap GET /models). A good probe half-opens it: the next real request
closes it on success or opens it again on failure. Health keeps the time to first token of the last
`window` answers (p50/p95), error counts by kind and the last error, for `status --json` and the panel.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
ALLOW, SKIP, PROBE = "allow", "skip", "probe"


class Breaker:
    def __init__(self, threshold: int, cooldown_s: float, clock=time.monotonic):
        self.threshold, self.cooldown_s, self._clock = threshold, cooldown_s, clock
        self.state = CLOSED
        self.failures = 0  # consecutive
        self.opened_at = 0.0
        self.opened_count = 0
        self._probing = False
        self._lock = threading.Lock()

    def check(self) -> str:
        """ALLOW a request, SKIP the server, or PROBE it first (one caller at a time)."""
        with self._lock:
            if self.state != OPEN:
                return ALLOW
            if self._probing or self._clock() - self.opened_at < self.cooldown_s:
                return SKIP
            self._probing = True
            return PROBE

    def probed(self, ok: bool) -> None:
        with self._lock:
            self._probing = False
            if ok:
                self.state = HALF_OPEN
            else:
                self.opened_at = self._clock()

    def success(self) -> None:
        with self._lock:
            self.state, self.failures = CLOSED, 0

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
                self.state, self.opened_at = OPEN, self._clock()
                self.opened_count += 1

    def remaining_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self.opened_at))


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile. Example: percentile([10, 20, 30, 40], 0.5) -> 20."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, min(len(ordered) - 1, math.ceil(len(ordered) * q) - 1))]


class Health:
    def __init__(self, window: int = 50):
        self.latencies_ms: deque = deque(maxlen=window)  # time to first token of successful answers
        self.errors: Counter = Counter()  # connect | timeout | http_5xx | http_429 | http_4xx | broken | midstream
        self.requests = 0
        self.served = 0
        self.last_error = ""
        self.reachable: bool | None = None  # None until contacted
        self._lock = threading.Lock()

    def attempt(self) -> None:
        with self._lock:
            self.requests += 1

    def ok(self, first_token_ms: float) -> None:
        with self._lock:
            self.served += 1
            self.reachable = True
            self.latencies_ms.append(first_token_ms)

    def reached(self) -> None:
        with self._lock:
            self.reachable = True

    def error(self, kind: str, message: str, reachable: bool) -> None:
        with self._lock:
            self.errors[kind] += 1
            self.last_error = message
            self.reachable = reachable

    def snapshot(self) -> dict:
        with self._lock:
            lat = list(self.latencies_ms)
            return {
                "reachable": self.reachable,
                "requests": self.requests,
                "served": self.served,
                "p50_ms": percentile(lat, 0.5),
                "p95_ms": percentile(lat, 0.95),
                "window": len(lat),
                "errors": dict(self.errors),
                "last_error": self.last_error,
            }
