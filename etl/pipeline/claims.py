"""Which planned assets a historical run works on when other runs of the job overlap it.

An asset is locked as its work starts (`JobRun.take`); one held by another run
is tried once more after the others have been started (that run may have
finished it by then) and otherwise skipped, listed under `skipped`. After the
lock is taken the asset's plan is re-checked against what overlapping runs
have fetched since this run planned (`store.fetched_meanwhile`), so no day is
requested twice: an asset another run just completed costs no request at all.
Runs begin at different points of the list (by run id), so two runs started
together over the same assets mostly take different ones instead of colliding.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Iterator, Sequence, TypeVar

from etl.pipeline import store
from etl.pipeline.plan import without
from etl.runs import JobRun

log = logging.getLogger(__name__)

GOLDEN = 0.6180339887498949  # spreads consecutive run ids far apart around the list

Plan = TypeVar("Plan")


def claimed(run: JobRun, plans: Sequence) -> Iterator:
    """Each plan whose asset this run could lock, re-checked; the assets held by other runs are skipped."""
    held = []
    for plan in rotated(plans, run.run_id):
        if run.take(plan.asset.spec):
            yield recheck(run, plan)
        else:
            held.append(plan)
    for plan in held:
        if run.take(plan.asset.spec):
            yield recheck(run, plan)
        else:
            log.info("%s: another run is working on it; skipped", plan.asset.spec)
            run.skip(plan.asset.symbol)


def rotated(items: Sequence[Plan], run_id: int | None) -> list[Plan]:
    """`items` starting at a point that depends on `run_id` (as given without one)."""
    if not run_id or len(items) < 2:
        return list(items)
    start = int((run_id * GOLDEN) % 1 * len(items))
    return list(items[start:]) + list(items[:start])


def recheck(run: JobRun, plan):
    """`plan` less what runs overlapping this one have fetched of its asset since it was planned."""
    if run.run_id is None or not plan.spans:
        return plan
    fetched = store.fetched_meanwhile(run.conn, plan.asset, run.run_id, run.started_at)
    if not fetched:
        return plan
    spans = without(plan.spans, fetched)
    if spans != plan.spans:
        log.info("%s: another run fetched part of it meanwhile; asking only %s", plan.asset.spec,
                 ", ".join(map(str, spans)) or "nothing")
    return replace(plan, spans=spans)
