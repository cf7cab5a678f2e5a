"""`etl report`: one self-contained HTML page, rendered in headless Chromium with the gap month visible."""

from __future__ import annotations

import re

import pytest

from support.browser import dump_dom, screenshot
from support.db import scalar
from support.runner import run_etl
from support.seed import GAP, LONG_ERROR, START, seed, utc_today

from etl.report_svg import months_between

ASSETS = 6  # the seeded world: BTC, ETH, AAPL, GONE, MSFT, NOPE


def cells(dom: str) -> list[dict[str, str]]:
    """Every heatmap cell of the rendered DOM with its data-* attributes."""
    found = []
    for tag in re.findall(r'<rect class="cell[^"]*"[^>]*>', dom):
        found.append(dict(re.findall(r'data-(\w+)="([^"]*)"', tag)))
    return found


@pytest.mark.browser
def test_report_renders_in_chromium_with_the_gap_month_visible(etl_env, db, tmp_path, capsys):
    seed(db)
    page = tmp_path / "report.html"
    assert run_etl("report", "--out", page) == 0
    assert f"wrote {page}" in capsys.readouterr().out
    html = page.read_text()
    assert "<script" not in html and not re.search(r'(src|href)="', html) and "@import" not in html

    dom, log = dump_dom(page, tmp_path / "profile")
    months = months_between(START, utc_today())
    shown = cells(dom)
    assert len(shown) == ASSETS * len(months)
    gap = f"{GAP[0].year}-{GAP[0].month:02d}"
    aapl = {c["month"]: c["share"] for c in shown if c["asset"] == "AAPL:STOCK"}
    assert aapl[gap] == "0.00"
    assert all(float(share) > 0.9 for month, share in aapl.items() if month not in (gap, months[0].strftime("%Y-%m")))
    assert {c["share"] for c in shown if c["asset"] == "GONE:STOCK"} == {""}   # no data: outside any span
    assert len(re.findall(r'<path class="price"', dom)) == ASSETS - 1        # every asset with data
    assert len(re.findall(r'<path class="adj"', dom)) == ASSETS - 1
    assert "CONSOLE" not in log and "ERR_" not in log and "Uncaught" not in log, log
    for figure in ("stale", "failing", "missing days"):
        assert figure in dom
    assert "yahoo: 503 — the provider is failing" in dom

    png = tmp_path / "report.png"
    screenshot(page, tmp_path / "profile-shot", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def figures(html: str) -> dict[str, str]:
    """The headline figures: label → value."""
    return {label: value for value, label in re.findall(r'<div class="figure[^"]*"><b>([^<]*)</b>([^<]*)</div>', html)}


def table_rows(html: str, heading: str) -> list[list[str]]:
    """The cells of each body row of the table under `heading`."""
    table = html.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])]


def test_report_headline_figures_providers_and_recent_runs_say_what_the_database_holds(etl_env, db, tmp_path):
    seed(db)
    with db.cursor() as cur:
        cur.execute("""
            INSERT INTO etl_job_runs (job, status, finished_at, failures) VALUES
                ('fetch_historical_market_data', 'partial', now(),
                 jsonb_build_array(jsonb_build_object('symbol', 'NOPE', 'error', %s::text)))""", (LONG_ERROR,))
        cur.execute("INSERT INTO provider_health (provider, day, requests, errors, last_error, last_error_at) "
                    "VALUES ('yahoo', (now() AT TIME ZONE 'UTC')::date, 12, 1, %s, now())", (LONG_ERROR,))
    page = tmp_path / "report.html"
    assert run_etl("report", "--out", page) == 0
    html = page.read_text()
    weekday_gap = [d for d in GAP if d.weekday() < 5]
    assert figures(html) == {"assets": "6", "rows": f"{scalar(db, 'SELECT count(*) FROM market_data'):,}", "stale": "3", "failing": "2",
                             "missing days": str(len(weekday_gap) + 1), "fetch_historical_market_data": "partial"}
    [yahoo] = [row for row in table_rows(html, "Providers") if row[0] == "yahoo"]
    assert yahoo[1] == "12" and yahoo[4] == "yahoo: 503 — the provider is failing, try again later"
    [run] = table_rows(html, "Recent runs")
    assert run[:3] == ["1", "fetch_historical_market_data", "partial"]
    assert run[-1] == "NOPE: yahoo: 503 — the provider is failing, try again later"


def test_report_of_an_empty_database_says_there_is_no_data(etl_env, db, tmp_path):
    page = tmp_path / "empty.html"
    assert run_etl("report", "--out", page) == 0
    assert "No market data stored yet." in page.read_text()


def test_report_to_a_folder_that_does_not_exist_exits_2_naming_the_path(etl_env, db, tmp_path, capsys):
    target = tmp_path / "no-such-folder" / "report.html"
    assert run_etl("report", "--out", target) == 2
    error = capsys.readouterr().err
    assert f"--out {target}: cannot write the report" in error and "existing folder" in error
