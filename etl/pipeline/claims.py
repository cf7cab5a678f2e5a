"""Which planned assets a historical run works on when other runs of the job overlap it.

An asset is locked as its work starts (`JobRun.take_all`: the assets about to be
started, in one statement); one held by another run
is tried once more after the others have been started (that run may have
finished it by then) and otherwise skipped, listed under `skipped`. After the
lock is taken the asset's plan is re-checked against what overlapping runs
have fetched since this run planned (`store.fetched_meanwhile`, for those
assets in one statement), so no day is
requested twice: an asset another run just completed costs no request at all.
Runs begin at different points of the list (by run id), so two runs started
together over the same assets mostly take different ones instead of colliding.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace
from typing import Sequence, TypeVar

from etl.pipeline import store
from etl.pipeline.plan import without
from etl.runs import JobRun

log = logging.getLogger(__name__)

GOLDEN = 0.6180339887498949  # spreads consecutive run ids far apart around the list

Plan = TypeVar("Plan")


class Claims:
    """Draws the plans a run may start, `n` at a time: `draw(n)` locks the next ones and returns those it
    could lock, re-checked; the assets held by other runs are tried once more when the rest are drawn,
    then skipped. An empty list means nothing is left."""

    def __init__(self, run: JobRun, plans: Sequence):
        self.run = run
        self.waiting = deque(rotated(plans, run.run_id))
        self.held: list = []
        self.retrying = False

    def draw(self, n: int) -> list:
        taken: list = []
        while len(taken) < n:
            if not self.waiting:
                if self.retrying or not self.held:
                    break
                self.retrying, self.waiting, self.held = True, deque(self.held), []
            chunk = [self.waiting.popleft() for _ in range(min(n - len(taken), len(self.waiting)))]
            for plan, got in zip(chunk, self.run.take_all([plan.asset.spec for plan in chunk])):
                if got:
                    taken.append(plan)
                elif self.retrying:
                    log.info("%s: another run is working on it; skipped", plan.asset.spec)
                    self.run.skip(plan.asset.symbol)
                else:
                    self.held.append(plan)
        return recheck(self.run, taken)


def rotated(items: Sequence[Plan], run_id: int | None) -> list[Plan]:
    """`items` starting at a point that depends on `run_id` (as given without one)."""
    if not run_id or len(items) < 2:
        return list(items)
    start = int((run_id * GOLDEN) % 1 * len(items))
    return list(items[start:]) + list(items[:start])


def recheck(run: JobRun, plans: Sequence) -> list:
    """`plans` less what runs overlapping this one have fetched of their assets since they were planned."""
    if run.run_id is None or not any(plan.spans for plan in plans):
        return list(plans)
    fetched = store.fetched_meanwhile(run.conn, [plan.asset for plan in plans if plan.spans], run.run_id,
                                      run.started_at)
    rechecked = []
    for plan in plans:
        spans = without(plan.spans, fetched[plan.asset]) if fetched.get(plan.asset) else plan.spans
        if spans != plan.spans:
            log.info("%s: another run fetched part of it meanwhile; asking only %s", plan.asset.spec,
                     ", ".join(map(str, spans)) or "nothing")
            plan = replace(plan, spans=spans)
        rechecked.append(plan)
    return rechecked
