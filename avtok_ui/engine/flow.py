"""Threads joined by bounded queues, with one stop signal for all of them.

A :class:`Flow` runs stage functions in background threads. Stages talk through :class:`Channel`\\ s
(bounded queues: memory stays flat whatever the video length). The first error in any stage, a user
cancel, or the caller leaving the ``with`` block early (Ctrl-C included) sets the flow's stop event: every
blocked ``put``/``get`` wakes within :data:`POLL_S` and raises :class:`Stopped`, so all stages end promptly.
``Flow.join`` re-raises the first stage error in the calling thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import Cancelled

#: How often a blocked stage looks at the stop signal (seconds).
POLL_S = 0.05

_END = object()


class Stopped(Exception):
    """Raised inside a stage when the flow was stopped by another stage's error or a cancel."""


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise :class:`~avtok_ui.errors.Cancelled` when the user's cancel event is set (the one cancel check)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled by the user")


class Channel:
    """A bounded FIFO between two stages; ``close()`` marks the end of the stream."""

    def __init__(self, flow: Flow, maxsize: int, name: str) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, maxsize))
        self._flow = flow
        self.name = name

    def put(self, item: Any) -> None:
        """Block until there is room (or the flow stops: then raise :class:`Stopped`)."""
        while True:
            self._flow.raise_if_stopped()
            try:
                self._q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Tell the consumer that no more items follow."""
        self.put(_END)

    def __iter__(self) -> Iterator[Any]:
        """Items until ``close()``; raises :class:`Stopped` if the flow stops meanwhile."""
        while True:
            self._flow.raise_if_stopped()
            try:
                item = self._q.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item


def _name_os_thread(name: str) -> None:
    """Give the calling thread an OS-level name (Linux: ``top -H`` / ``/proc/<pid>/task/*/comm`` show which
    stage burns CPU); no-op elsewhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None)
            libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


class Flow:
    """Owns the stage threads of one run. Use as a context manager around the run's foreground work."""

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self.stop = threading.Event()
        self.cancel = cancel
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    # ----- stop signal -----------------------------------------------------------------------------
    def raise_if_stopped(self) -> None:
        """Raise :class:`Stopped` (another stage failed) or ``Cancelled`` (the user's cancel)."""
        check_cancel(self.cancel)
        if self.stop.is_set():
            raise Stopped()

    def fail(self, err: BaseException) -> None:
        with self._lock:
            if not isinstance(err, Stopped):
                self._errors.append(err)
        self.stop.set()

    # ----- stages ----------------------------------------------------------------------------------
    def channel(self, maxsize: int, name: str) -> Channel:
        return Channel(self, maxsize, name)

    def start(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``fn(*args, **kwargs)`` in a daemon thread named ``avtok-<name>``."""

        def body() -> None:
            _name_os_thread(f"avtok-{name}")
            try:
                fn(*args, **kwargs)
            except BaseException as err:  # noqa: BLE001 -- handed to the foreground thread by join()
                self.fail(err)

        t = threading.Thread(target=body, name=f"avtok-{name}", daemon=True)
        self._threads.append(t)
        t.start()
        return t

    def join(self) -> None:
        """Wait for every stage; re-raise the first real error (a cancel becomes ``Cancelled``)."""
        for t in self._threads:
            t.join()
        self._threads.clear()
        if self._errors:
            raise self._errors[0]
        check_cancel(self.cancel)
        if self.stop.is_set():
            raise Stopped()

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            # the foreground failed (or Ctrl-C): stop the stages, wait for them, then let ``exc`` propagate
            # -- unless it is only the echo of a stage's own error, which is the one to report
            self.stop.set()
            for t in self._threads:
                t.join()
            self._threads.clear()
            if isinstance(exc, Stopped) and self._errors:
                raise self._errors[0] from None
