"""`etl report`: one self-contained HTML page, rendered in headless Chromium with the gap month visible."""

from __future__ import annotations

import re

import pytest

from support.browser import dump_dom, screenshot
from support.runner import run_etl
from support.seed import GAP, START, seed, utc_today

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


def test_report_of_an_empty_database_says_there_is_no_data(etl_env, db, tmp_path):
    page = tmp_path / "empty.html"
    assert run_etl("report", "--out", page) == 0
    assert "No market data stored yet." in page.read_text()
