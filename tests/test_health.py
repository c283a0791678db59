"""The circuit breaker and the latency record, on an injected clock (pure logic, no network)."""

from rag.llm.health import ALLOW, CLOSED, HALF_OPEN, OPEN, PROBE, SKIP, Breaker, Health, percentile
from rag.llm.remote import backoff_s, estimate_tokens


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_probes_once_and_closes():
    clock = Clock()
    b = Breaker(threshold=3, cooldown_s=10, clock=clock)
    b.failure(), b.failure(), b.success(), b.failure(), b.failure()
    assert b.state == CLOSED and b.check() == ALLOW  # a success resets the count
    b.failure()
    assert b.state == OPEN and b.check() == SKIP and b.remaining_s() == 10
    clock.now += 9.9
    assert b.check() == SKIP
    clock.now += 0.2
    assert b.check() == PROBE and b.check() == SKIP  # one prober at a time
    b.probed(False)
    assert b.state == OPEN and b.remaining_s() == 10  # a failed probe starts a new cooldown
    clock.now += 10
    assert b.check() == PROBE
    b.probed(True)
    assert b.state == HALF_OPEN and b.check() == ALLOW
    b.failure()
    assert b.state == OPEN and b.opened_count == 2  # half-open: one failure re-opens
    clock.now += 10
    assert b.check() == PROBE
    b.probed(True)
    b.success()
    assert b.state == CLOSED and b.failures == 0


def test_health_keeps_a_window_of_latencies_and_counts_errors():
    h = Health(window=4)
    for ms in (50, 10, 20, 30, 40):
        h.ok(ms)
    h.error("timeout", "no response", reachable=False)
    snap = h.snapshot()
    assert snap["window"] == 4 and snap["p50_ms"] == 20 and snap["p95_ms"] == 40  # 50 fell out
    assert snap["errors"] == {"timeout": 1} and snap["reachable"] is False and snap["served"] == 5
    assert percentile([], 0.5) is None and percentile([7], 0.95) == 7


def test_backoff_is_jittered_exponential_capped_and_honours_retry_after():
    for attempt in range(8):
        delays = [backoff_s(attempt) for _ in range(200)]
        assert all(0 <= d <= min(4.0, 0.25 * 2**attempt) for d in delays) and len(set(delays)) > 100
    assert backoff_s(0, retry_after=3.0) >= 3.0


def test_the_token_estimate_is_not_below_a_real_tokenizer(embedder):
    """English and code vs MiniLM's WordPiece, which splits finer than chat-model BPEs. (For Korean it
    splits syllables into jamo, unlike any chat model, so it is no reference there.)"""
    tokenizer = embedder.tokenizer
    for text in (
        "The festival ends with a parade of paper boats at midnight.",
        "Reliability: ENOSPC mid-commit raises IndexWriteError; the last version stays loadable.",
        "def f(x): return {'a': [1, 2, 3]}  # code, numbers and punctuation",
    ):
        assert estimate_tokens(text) >= len(tokenizer.encode(text, add_special_tokens=False)), text
    assert estimate_tokens("축제는 매년 10월에 열립니다") == 2 * 11 + int(5 / 3.5) + 1  # two per syllable
