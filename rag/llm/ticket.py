"""TicketLock: a FIFO lock for the one llama.cpp context, telling each waiter its place in the queue."""

from __future__ import annotations

import threading
from contextlib import contextmanager


class TicketLock:
    """A FIFO lock that reports each waiter's position (0 = its turn). A ticket abandoned while
    waiting (a closed browser tab) is skipped when its turn comes, so nobody waits for it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._abandoned: set[int] = set()

    def take(self) -> int:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            return ticket

    def position(self, ticket: int) -> int:
        return max(0, ticket - self._serving)

    @property
    def waiting(self) -> int:
        """Callers holding or waiting for the lock."""
        return self._next_ticket - self._serving - len(self._abandoned)

    def release(self, ticket: int) -> None:
        with self._cond:
            if self._serving != ticket:
                self._abandoned.add(ticket)
                return
            self._serving += 1
            while self._serving in self._abandoned:
                self._abandoned.discard(self._serving)
                self._serving += 1
            self._cond.notify_all()

    @contextmanager
    def hold_reporting(self, ticket: int, poll: float = 0.25):
        """Yield an iterator of queue positions that ends when it is `ticket`'s turn; exhaust it,
        then the block holds the lock. The ticket is released (or abandoned) on exit."""

        def positions():
            last = None
            while self.position(ticket) > 0:  # reported at once, then whenever it changes
                position = self.position(ticket)
                if position != last:
                    last = position
                    yield position
                with self._cond:
                    self._cond.wait_for(lambda: self._serving == ticket, poll)

        try:
            yield positions()
        finally:
            self.release(ticket)
