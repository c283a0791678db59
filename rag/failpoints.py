"""Named fault-injection points, for the crash and disk-full tests (the failpoint technique of
SQLite's and etcd's test suites).

The code calls `hit("commit.renamed")` at the moments a crash or a full disk matters. Nothing happens
unless AI_CHAT_FAILPOINT is set, to `name[:n][=action]`: at the n-th hit (default 1) of that point the
action runs. Actions: `kill` (SIGKILL this process: no cleanup, no flush; the default), `enospc`
(raise OSError ENOSPC, as a full disk does), `sigill`, `sigsegv`, `sigbus` (this process dies by
that signal, as it does when a CPU kernel runs an instruction the CPU does not allow or faults) and
`sleepN` (wait N seconds, as a slow disk does; e.g. `model.load=sleep3`) and `wait:PATH` (wait until
PATH exists, at most 120 s: a test holds a slow step open and releases it when it is ready).
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time

ENV = "AI_CHAT_FAILPOINT"
_counts: dict[str, int] = {}
_lock = threading.Lock()
_SIGNALS = {"sigill": signal.SIGILL, "sigsegv": signal.SIGSEGV, "sigbus": signal.SIGBUS}


def hit(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, action = spec.partition("=")
    point, _, nth = target.partition(":")
    if point != name:
        return
    with _lock:
        key = f"{spec}|{name}"  # a new spec (another test, another run) counts from zero
        _counts[key] = count = _counts.get(key, 0) + 1
    if count != int(nth or 1):
        return
    if action in ("", "kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    elif action in _SIGNALS:
        os.kill(os.getpid(), _SIGNALS[action])
    elif action.startswith("wait:"):
        deadline = time.monotonic() + 120
        while not os.path.exists(action[5:]) and time.monotonic() < deadline:
            time.sleep(0.05)
    elif action.startswith("sleep"):
        time.sleep(float(action[5:] or 1))
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"failpoint {name}")
    else:
        known = ", ".join(["kill", "enospc", "sleepN", "wait:PATH", *_SIGNALS])
        raise ValueError(f"{ENV}={spec}: unknown action {action!r} ({known})")


def reset() -> None:
    with _lock:
        _counts.clear()
