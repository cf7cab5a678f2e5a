"""Whether a provider's host can be connected to at all, found out once per HTTP session (`fetch_utils`)."""

from __future__ import annotations

import threading

from etl import stopping
from etl.errors import ProviderUnreachableError

ABORT_CHECK_SECONDS = 0.1  # how often a wait looks whether the run is being stopped


class Reachability:
    """Whether one provider's host can be connected to at all, found out once per session.

    Until the host has been reached once, the session's first request is the
    probe and the others wait for it, so that threads starting together do not
    each pay for a host that is down. A probe that cannot connect (DNS failure,
    connection refused, connect timeout) alone goes on retrying, neither paced
    by the rate limiter nor charged to the daily budget (nothing reached the
    provider) and without jitter (no other request of ours retries beside it);
    so does any later request that cannot connect. A probe that connects lets
    the others go on; one whose retries all fail makes the provider
    unreachable, and every request of the session, waiting or later, raises
    that ProviderUnreachableError without being sent.
    """

    def __init__(self) -> None:
        self.down: ProviderUnreachableError | None = None
        self.reached = False               # a request of the session has connected to the host
        self._probe: int | None = None     # the thread probing, if any
        self._changed = threading.Condition()

    def admit(self, *, may_probe: bool = True) -> None:
        """Return when this thread may send: no other thread is probing (while the host was never reached, this
        one then probes, unless its request is for another host); raise when the provider is down."""
        me = threading.get_ident()
        with self._changed:
            while self._probe not in (None, me) and self.down is None:
                self._changed.wait(ABORT_CHECK_SECONDS)
                stopping.check()
            if may_probe and not self.reached and self.down is None:
                self._probe = me
        self.check()

    def connected(self) -> None:
        """This thread's attempt reached the host (an answer, or a failure after connecting): the others need
        not wait for it any longer."""
        if not self.reached:
            with self._changed:
                self.reached = True
                if self._probe == threading.get_ident():
                    self._probe = None
                    self._changed.notify_all()

    def check(self) -> None:
        if self.down is not None:
            raise self.down

    def failed_to_connect(self) -> bool:
        """This thread's attempt could not connect; True when it is (or now becomes) the probe."""
        me = threading.get_ident()
        with self._changed:
            if self._probe is None and self.down is None:
                self._probe = me
            return self._probe == me

    def give_up(self, error: ProviderUnreachableError) -> None:
        with self._changed:
            if self.down is None:
                self.down = error
            self._probe = None
            self._changed.notify_all()

    def settled(self) -> None:
        """This thread's request ended (answered, or failed some other way): it probes no more."""
        with self._changed:
            if self._probe == threading.get_ident():
                self._probe = None
                self._changed.notify_all()
