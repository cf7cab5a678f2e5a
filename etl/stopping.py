"""Cooperative stopping: a signal asks the running job to stop at its next safe point.

The signal handler only records the request (and cancels the statements of the
connections registered with `cancelling`); the job sees it at `check()`, which
the pipeline calls between assets and requests, and in `sleep()`, which every
wait (rate limits, retry backoff) goes through. The run then ends the usual way:
uncommitted work rolled back, committed assets announced, exit 130 or 143.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from etl.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted

log = logging.getLogger(__name__)

_requested: int | None = None
_wake = threading.Event()
_cancellers: set[Callable[[], None]] = set()
_lock = threading.Lock()


def request(exit_code: int) -> None:
    """Ask the running job to stop; it ends with `exit_code` (130 or 143)."""
    global _requested
    with _lock:
        if _requested is None:
            _requested = exit_code
        cancellers = list(_cancellers)
    _wake.set()
    for cancel in cancellers:
        # In a thread of its own: a cancel request to a server that stopped answering would wait for
        # ever, and this may run in a signal handler.
        threading.Thread(target=_cancel_quietly, args=(cancel,), name="cancel", daemon=True).start()


def _cancel_quietly(cancel: Callable[[], None]) -> None:
    try:
        cancel()
    except Exception:  # a connection already gone has nothing to cancel
        log.debug("cancelling a statement failed", exc_info=True)


def requested() -> int | None:
    return _requested


def check() -> None:
    """Raise `Interrupted` if a stop was asked for."""
    if _requested is not None:
        raise Interrupted(_requested)


def sleep(seconds: float) -> None:
    """Wait `seconds`, or less if a stop is asked for meanwhile (then raise `Interrupted`)."""
    if seconds > 0:
        _wake.wait(seconds)
    check()


def reset() -> None:
    """Forget an earlier request (the worker, before each job)."""
    global _requested
    with _lock:
        _requested = None
    _wake.clear()


@contextmanager
def cancelling(cancel: Callable[[], None]) -> Iterator[None]:
    """While inside, a stop request also calls `cancel` (e.g. a connection's `cancel`)."""
    with _lock:
        _cancellers.add(cancel)
    try:
        yield
    finally:
        with _lock:
            _cancellers.discard(cancel)


@contextmanager
def handling_signals() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM ask the job to stop (exit 130 / 143) and a second signal exits at
    once; on the way out the earlier handlers come back and the request is forgotten, so a job run
    in-process (a test, a program embedding the ETL) leaves no trace for the next one."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reset()
    earlier = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    earlier_fd = _install_handlers()
    try:
        yield
    finally:
        _active = False
        signal.set_wakeup_fd(earlier_fd)
        for sig, handler in earlier.items():
            signal.signal(sig, handler)
        reset()


def _install_handlers() -> int:
    """SIGINT and SIGTERM ask the job to stop (exit 130 / 143); a second signal exits at once. Returns the
    wakeup fd set before (see `signal.set_wakeup_fd`).

    The signals are handled on a thread of their own, woken through `signal.set_wakeup_fd`:
    Python runs a handler only between bytecodes of the main thread, so a main thread
    blocked in a long database statement would hear neither signal until it returned.
    Handled there, the first signal cancels that statement at once and the second exits.
    """
    global _active, _wakeup
    if threading.current_thread() is not threading.main_thread():
        return -1
    if _wakeup is None:
        read_end, _wakeup = os.pipe()
        os.set_blocking(_wakeup, False)
        threading.Thread(target=_watch_signals, args=(read_end,), name="signals", daemon=True).start()
    earlier_fd = signal.set_wakeup_fd(_wakeup, warn_on_full_buffer=False)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _noted)
    _active = True
    return earlier_fd


_wakeup: int | None = None  # the write end of the watcher's pipe, once it runs
_active = False             # whether the watcher acts on what it reads (only while handlers are installed)


def _noted(signum, frame) -> None:
    """The Python-level handler: nothing to do, the C-level one woke `_watch_signals` already."""


def _watch_signals(read_end: int) -> None:
    while True:
        for signum in os.read(read_end, 64):
            if _active and signum in (signal.SIGINT, signal.SIGTERM):
                _received(signum)


def _received(signum: int) -> None:
    code = EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED
    if _requested is not None:
        os._exit(code)
    log.warning("%s received: stopping after the current step (send it again to exit at once)",
                signal.Signals(signum).name)
    request(code)
