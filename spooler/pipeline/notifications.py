"""The lab's notifications: the job store's outbox, sent to the lab's channels.

What the lab must hear of (the machine down or up again, a queued or running job ending
ERROR, a quarantined item, the store out of reach) is written as a row of the table
``notifications`` in the transaction of the event itself (``Transaction.notify``), so a crash
loses none. The :class:`Notifier`, a thread of the spooler daemon with its own connection to
the store, sends the rows that are due through apprise to every URL of ``notify.urls``:

* at most ``notify.messages_per_hour_max`` an hour, counted in the store (so across
  restarts); rows beyond that wait, and once a message may go again the waiting ones go
  together as one digest (each row a digest holds counts as sent);
* a message not delivered (apprise says so, raises, or takes longer than
  ``notify.send_timeout_s``) is tried again after ``retry_interval_s``, doubling up to
  ``retry_interval_max_s``, and dropped, with an ERROR in the log, once it is
  ``give_up_after_s`` old; meanwhile nothing else is sent (the channel is down);
* without URLs the rows are marked sent at once, so that the outbox does not grow.

Every message names the machine (the backend) and the host in its title, and its body ends
with what to do (:mod:`spooler.pipeline.notificationtext`). A URL holds secrets: only its
scheme is ever logged or stored (the sending: :mod:`spooler.pipeline.channels`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from spooler.core.logs import JobLogger, for_job
from spooler.core.settings import Settings
from spooler.core.store import JobStore, NotificationRow
from spooler.core.store.notifications import NotificationRows
from spooler.core.timestamps import iso_time
from spooler.pipeline.channels import (
    Send,
    Stopped,
    apprise_sender,
    describe_failures,
    send_bounded,
)
from spooler.pipeline.notificationtext import WHAT_TO_DO, compose, origin_of

__all__ = ["DIGEST_ROWS_MAX", "POLL_S", "Notifier", "Send", "apprise_sender", "send_test"]

log = logging.getLogger(__name__)

POLL_S = 1.0  # the outbox is looked at this often, and whenever wake() is called
WINDOW_S = 3600.0  # the rate limit's window
DUE_ROWS_MAX = 200  # rows read at one step
DIGEST_ROWS_MAX = 50  # rows in one digest; the rest go in the next
STOP_WAIT_S = 5.0  # stop() waits this long for the thread
STEP_RETRY_MAX_S = 60.0  # a step that fails again and again is tried at most this rarely


class Notifier:
    """Sends the outbox's due rows (:meth:`step`), from a thread of its own (:meth:`start`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        send: Send | None = None,
    ) -> None:
        self.settings = settings
        self.notify = settings.notify
        self.clock = clock
        self.send = send if send is not None else apprise_sender(settings.notify.send_timeout_s)
        # its own connection: it runs in its own thread
        self.store = JobStore(settings.folders.database, clock=clock)
        self.prefix, self.origin = origin_of(settings)
        self._held: set[int] = set()  # rows the rate limit held back: they go as a digest
        self._delivered: dict[int, set[int]] = {}  # row -> URLs that have it (retries skip them)
        self._hold_until = float("-inf")  # the channel failed: nothing goes before this
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`step` in a daemon thread every ``POLL_S`` and whenever woken."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="notifications", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now (a row was written)."""
        self._wake.set()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """End the thread (a send in flight is abandoned; its rows stay due)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("notifications: the thread did not end within %g s", timeout_s)
        else:
            self._thread = None
            self._stopping.clear()  # step() may still be called by hand

    def close(self) -> None:
        self.stop()
        if self._thread is None:  # a thread that did not end keeps its connection
            self.store.close()

    def _loop(self) -> None:
        pause_s = POLL_S
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.step()
            except Stopped:
                break
            except Exception:  # the next step may do better; the daemon goes on regardless
                log.exception("notifications: a step failed; trying again in %g s", pause_s)
                self._wake.wait(pause_s)
                pause_s = min(2 * pause_s, STEP_RETRY_MAX_S)
                continue
            pause_s = POLL_S
            self._wake.wait(POLL_S)

    # -- one step ---------------------------------------------------------------------------

    def step(self) -> int:
        """Send what is due; returns how many rows were delivered (without URLs: marked sent)."""
        with self._lock:
            now = self.clock()
            if not self.notify.urls:
                return self._discard(now)
            if now < self._hold_until:
                return 0
            read = self.store.read
            due = NotificationRows.due(read, now, DUE_ROWS_MAX)
            if not due:
                return 0
            allowed = self.notify.messages_per_hour_max - NotificationRows.sent_since(
                read, now - WINDOW_S
            )
            if allowed <= 0:
                self._held.update(row.id for row in due)
                return 0
            held = [row for row in due if row.id in self._held]
            fresh = [row for row in due if row.id not in self._held]
            messages: list[list[NotificationRow]] = []
            if len(held) > 1:
                messages.append(held[:DIGEST_ROWS_MAX])
                allowed -= 1
            else:
                fresh = held + fresh
            messages.extend([row] for row in fresh[:allowed])
            if len(fresh) > allowed:
                log.info(
                    "notifications: %d held back by the rate limit (%d an hour at most)",
                    len(fresh) - allowed,
                    self.notify.messages_per_hour_max,
                )
            self._held.update(row.id for row in fresh[allowed:])
            delivered = 0
            for rows in messages:
                if not self._send(rows, now):
                    break  # the channel is down: the rest waits for the retry
                delivered += len(rows)
            return delivered

    def _discard(self, now: float) -> int:
        """No URLs: the due rows are marked sent, so that the outbox does not grow."""
        total = 0
        while rows := NotificationRows.due(self.store.read, now, DUE_ROWS_MAX):
            with self.store.transaction() as tx:
                NotificationRows.sent(tx, (row.id for row in rows))
            for row in rows:
                self._logger(row).debug("no notify.urls: not sent: %s", row.title)
            total += len(rows)
        return total

    def _send(self, rows: list[NotificationRow], now: float) -> bool:
        """One message of *rows*; True when every URL has it."""
        title, body = compose(rows, self.prefix, self.origin, self.notify.messages_per_hour_max)
        urls = self.notify.urls
        targets = [
            (index, url)
            for index, url in enumerate(urls)
            if any(index not in self._delivered.get(row.id, ()) for row in rows)
        ]
        results = send_bounded(
            self.send, targets, title, body, self.notify.send_timeout_s, self._stopping
        )
        for index, error in results.items():
            if error is None:
                for row in rows:
                    self._delivered.setdefault(row.id, set()).add(index)
        error = describe_failures(urls, results)
        if error is None:
            with self.store.transaction() as tx:
                NotificationRows.sent(tx, (row.id for row in rows))
            self._forget(rows)
            if len(rows) == 1:
                self._logger(rows[0]).info("notification sent: %s", rows[0].title)
            else:
                log.info("notifications: a digest of %d sent", len(rows))
            return True
        self._failed(rows, error, now)
        return False

    def _failed(self, rows: list[NotificationRow], error: str, now: float) -> None:
        settings = self.notify
        waits: list[float] = []
        dropped: list[NotificationRow] = []
        with self.store.transaction() as tx:
            for row in rows:
                if now - row.at >= settings.give_up_after_s:
                    NotificationRows.failed(tx, [row.id], error, now, drop=True)
                    dropped.append(row)
                else:
                    wait = min(
                        settings.retry_interval_s * 2.0 ** min(row.tries, 32),
                        settings.retry_interval_max_s,
                    )
                    NotificationRows.failed(tx, [row.id], error, now + wait)
                    waits.append(wait)
        self._forget(dropped)
        for row in dropped:
            self._logger(row).error(
                "notification given up after %d tries over %.0f s, not sent: %s (%s)",
                row.tries + 1,
                now - row.at,
                row.title,
                error,
            )
        if waits:
            log.warning(
                "notifications: %d not delivered (%s); trying again in %g s",
                len(waits),
                error,
                min(waits),
            )
        self._hold_until = now + min(waits, default=settings.retry_interval_s)

    def _forget(self, rows: list[NotificationRow]) -> None:
        for row in rows:
            self._held.discard(row.id)
            self._delivered.pop(row.id, None)

    @staticmethod
    def _logger(row: NotificationRow) -> logging.Logger | JobLogger:
        return log if row.job_id is None else for_job(log, row.job_id)


def send_test(
    settings: Settings, *, send: Send | None = None, problems: list[str] | None = None
) -> bool:
    """Send one test message to every URL of ``notify.urls`` now (not through the outbox);
    True when every one took it. Why not is appended to *problems*."""
    problems = problems if problems is not None else []
    urls = settings.notify.urls
    if not urls:
        problems.append("notify.urls is empty in the configuration: there is nowhere to send to")
        return False
    timeout_s = settings.notify.send_timeout_s
    sender = send if send is not None else apprise_sender(timeout_s)
    prefix, origin = origin_of(settings)
    body = (
        f"{origin}, {iso_time(time.time())}\n\n"
        "A test of the lab's notifications, sent by `labspool notify test`.\n"
        f"{WHAT_TO_DO} nothing: it arrived, so this channel works."
    )
    results = send_bounded(sender, list(enumerate(urls)), f"{prefix} test message", body, timeout_s)
    error = describe_failures(urls, results)
    if error is not None:
        problems.append(error)
        return False
    return True
