"""The crontab serves each asset type on its market's hours, read with the scheduler's own cron parser.

yacron, the container's scheduler, matches schedules with the PyPI `crontab`
package; these tests walk a whole week minute by minute through the same parser.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta

from crontab import CronTab

from support.runner import REPO

WEEK_START = datetime(2024, 6, 2)  # a Sunday, 00:00 UTC
QUOTE_TYPES = {"STOCK", "ETF", "CRYPTO", "FOREX"}


def schedule_lines() -> list[tuple[str, str]]:
    spec = importlib.util.spec_from_file_location("crontab_to_yacron", REPO / "docker" / "crontab_to_yacron.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse((REPO / "crontab").read_text(encoding="utf-8"))[1]


def quote_lines(asset_type: str) -> list[CronTab]:
    """The schedules of the fetch_market_data lines that quote `asset_type`."""
    found = []
    for schedule, command in schedule_lines():
        words = command.split()
        if "fetch_market_data" not in words:
            continue
        types = set(words[words.index("--types") + 1].split(",")) if "--types" in words else QUOTE_TYPES
        if asset_type in types:
            found.append(CronTab(schedule))
    return found


def runs_in_week(asset_type: str) -> list[datetime]:
    lines = quote_lines(asset_type)
    minutes = (WEEK_START + timedelta(minutes=m) for m in range(7 * 24 * 60))
    return [minute for minute in minutes if any(line.test(minute) for line in lines)]


def day_names(runs: list[datetime]) -> set[str]:
    return {run.strftime("%a") for run in runs}


def test_crypto_quotes_are_scheduled_every_day_including_saturday_and_sunday():
    runs = runs_in_week("CRYPTO")
    assert day_names(runs) == {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    saturday = [r for r in runs if r.strftime("%a") == "Sat"]
    assert len(saturday) == 96                      # every 15 minutes, around the clock
    assert {r.minute for r in runs} == {7, 22, 37, 52}


def test_forex_quotes_run_from_sunday_21_00_to_friday_22_00_utc():
    runs = runs_in_week("FOREX")
    assert runs[0].strftime("%a %H") == "Sun 21"
    assert runs[-1].strftime("%a") == "Fri" and runs[-1].hour == 21
    assert "Sat" not in day_names(runs)
    hours = {(r.date(), r.hour) for r in runs}
    open_hours = (runs[-1] - runs[0]).total_seconds() // 3600 + 1
    assert len(hours) == open_hours                  # no hour of the open market is left out


def test_stock_and_etf_quotes_keep_the_weekday_us_session():
    for asset_type in ("STOCK", "ETF"):
        runs = runs_in_week(asset_type)
        assert day_names(runs) == {"Mon", "Tue", "Wed", "Thu", "Fri"}
        assert {r.hour for r in runs} == set(range(13, 22))
        assert len(runs) == 5 * 9 * 12


def test_every_quoted_type_has_a_schedule_and_no_two_quote_runs_start_in_the_same_minute():
    starts: list[datetime] = []
    for schedule, command in schedule_lines():
        if "fetch_market_data" in command.split():
            line = CronTab(schedule)
            starts += [WEEK_START + timedelta(minutes=m) for m in range(7 * 24 * 60)
                       if line.test(WEEK_START + timedelta(minutes=m))]
    assert len(starts) == len(set(starts))
    assert all(runs_in_week(t) for t in QUOTE_TYPES)
