"""Write one self-contained HTML page of what the database holds, readable offline.

Headline figures (assets, rows, stale, failing, the last runs), a coverage
heatmap (assets × months, each cell shaded by the share of that month's trading
days stored, so holes show at a glance), a small chart per asset of its
as-traded close (solid) and adjusted close (dashed), the providers and the
recent runs with their errors. Inline SVG and CSS only: no script, nothing
fetched from the network.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Sequence

from etl.cli import CommandParser, parse_or_exit, run_cli
from etl.coverage import AssetStatus, asset_statuses, job_statuses, provider_statuses
from etl.error_lines import run_error_line
from etl.errors import UsageError
from etl.report_svg import Row, heatmap, price_chart
from etl.utils import db_utils

RECENT_RUNS = 15

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.figures { display: flex; gap: 12px; flex-wrap: wrap; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 90px; }
.figure b { display: block; font-size: 22px; } .figure.bad b { color: #b2182b; }
table { border-collapse: collapse; } td, th { padding: 3px 10px 3px 0; text-align: left; vertical-align: top; white-space: nowrap; }
td:last-child { white-space: normal; } th { border-bottom: 1px solid #ccc; } .num { text-align: right; } .bad { color: #b2182b; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; } .charts figure { margin: 0; }
figcaption { font-size: 12px; color: #555; }
svg text { font: 10px system-ui, sans-serif; fill: #444; } svg text.end { text-anchor: end; }
.heatmap .out { fill: #f0f0f0; } .heatmap line.year { stroke: #999; stroke-width: 0.5; }
.chart path { fill: none; stroke-width: 1.3; } .chart path.price { stroke: #2166ac; }
.chart path.adj { stroke: #d6604d; stroke-dasharray: 3 2; }
.legend span { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 10px; }
"""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="etl report", description=__doc__,
                           examples=("etl report", "etl report --out /tmp/coverage.html"))
    parser.add_argument("--out", type=Path, default=Path("report.html"), metavar="FILE",
                        help="where to write the page (default report.html)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    return run_cli("etl report", lambda settings: _run(args, settings))


def _run(args, settings) -> int:
    now = datetime.now(timezone.utc)
    with db_utils.database(settings) as conn:
        assets = asset_statuses(conn, now=now, lookback_days=settings.lookback_days)
        page = render(now, assets, _monthly_rows(conn, assets), _series(conn, assets),
                      provider_statuses(conn, settings), job_statuses(conn), _recent_runs(conn))
    try:
        args.out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write the report ({exc.strerror or exc}) — pass a path "
                         "in an existing folder you can write to") from None
    print(f"wrote {args.out} ({len(assets)} asset(s), {sum(a.rows for a in assets)} row(s))")
    return 0


def _monthly_rows(conn, assets: Sequence[AssetStatus]) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute("""
            SELECT symbol, asset_type, date_trunc('month', date)::date, count(*) FROM market_data
             WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
             GROUP BY 1, 2, 3""", ([a.symbol for a in assets], [a.asset_type for a in assets]))
        counts: dict[tuple[str, str], dict] = {}
        for symbol, asset_type, month, count in cur.fetchall():
            counts.setdefault((symbol, asset_type), {})[month] = count
    return [Row(a.spec, a.asset_type, a.first_date, a.last_date, counts.get((a.symbol, a.asset_type), {}))
            for a in assets]


def _series(conn, assets: Sequence[AssetStatus]) -> dict[tuple[str, str], list[tuple]]:
    with conn.cursor() as cur:
        cur.execute("""
            SELECT symbol, asset_type, date, price, adj_close FROM market_data
             WHERE (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
             ORDER BY symbol, asset_type, date""", ([a.symbol for a in assets], [a.asset_type for a in assets]))
        series: dict[tuple[str, str], list[tuple]] = {}
        for symbol, asset_type, day, price, adj in cur.fetchall():
            series.setdefault((symbol, asset_type), []).append((day, price, adj))
    return series


def _recent_runs(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("SELECT run_id, job, status, started_at, rows_upserted, error, failures FROM etl_job_runs "
                    "ORDER BY run_id DESC LIMIT %s", (RECENT_RUNS,))
        return [(*row[:5], run_error_line(row[5], row[6])) for row in cur.fetchall()]


def render(now: datetime, assets, rows: Sequence[Row], series: dict, providers, jobs, runs) -> str:
    """The whole page as one string."""
    stale = [a for a in assets if a.stale]
    failing = [a for a in assets if a.failing]
    figures = [("assets", len(assets), False), ("rows", f"{sum(a.rows for a in assets):,}", False),
               ("stale", len(stale), bool(stale)), ("failing", len(failing), bool(failing)),
               ("missing days", sum(a.missing_days for a in assets), False)]
    figures += [(job.job, job.status or "never run", job.status in ("failed", "partial")) for job in jobs
                if job.last_run_id is not None]
    charts = "".join(
        f'<figure>{price_chart(a.spec, series.get((a.symbol, a.asset_type), []))}'
        f'<figcaption>{escape(a.spec)} {escape(a.name or "")}</figcaption></figure>' for a in assets)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>financial-tracker-etl report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>financial-tracker-etl</h1><p>Generated {now:%Y-%m-%d %H:%M} UTC.</p>
<div class="figures">{"".join(
        f'<div class="figure{" bad" if bad else ""}"><b>{escape(str(value))}</b>{escape(label)}</div>'
        for label, value, bad in figures)}</div>
<h2>Coverage</h2>
<p class="legend">Share of each month's trading days stored:<span style="background:hsl(0, 70%, 50%)"></span>none
<span style="background:hsl(60, 70%, 46%)"></span>half<span style="background:hsl(120, 70%, 42%)"></span>all
<span style="background:#f0f0f0"></span>outside the stored span</p>
{heatmap(rows)}
<h2>Assets</h2>
{_table(("asset", "name", "provider", "first", "last", "rows", "missing", "stale", "last error"),
            [(a.spec, a.name, a.provider, a.first_date, a.last_date, a.rows, a.missing_days,
              "stale" if a.stale else "", a.last_error) for a in assets])}
<h2>Prices</h2><p class="legend">as traded (solid), adjusted (dashed)</p>
<div class="charts">{charts}</div>
<h2>Providers</h2>
{_table(("provider", "requests today", "daily limit", "left today", "last error", "at"),
            [(p.name, p.requests_today, p.daily_limit, p.budget_left, p.last_error, p.last_error_at)
             for p in providers])}
<h2>Recent runs</h2>
{_table(("run", "job", "status", "started", "rows", "error"), runs)}
</body></html>
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "<td></td>"
        if isinstance(value, datetime):
            return f"<td>{value.astimezone(timezone.utc):%Y-%m-%d %H:%M}</td>"
        css = ' class="num"' if isinstance(value, int) else (' class="bad"' if value in ("stale", "failed") else "")
        return f"<td{css}>{escape(str(value))}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


if __name__ == "__main__":
    sys.exit(main())
