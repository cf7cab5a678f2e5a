"""An unreachable provider is found out once per run, said once, and costs the other assets nothing.

Yahoo is pointed at a port that refuses connections, or at a host no DNS
resolves; the jobs run for real. The first request and its retries find the
provider down; every other asset goes to its next provider, or fails with the
same reason, without another request. The output has one line for the provider,
not one per asset, with its host but no URL; the progress line counts successes
and failures apart.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from support.db import rows, scalar
from support.runner import UNREACHABLE, run_etl
from support.yahoo_server import YahooServer

RETRIES = 2
OFFLINE = {"refused": UNREACHABLE, "dns": "http://etl-offline-host.invalid"}
START, END = date(2024, 1, 1), date(2024, 1, 31)


@pytest.fixture
def offline_env(etl_env, monkeypatch):
    monkeypatch.setenv("ETL_HTTP_RETRIES", str(RETRIES))
    return etl_env


def requests_made(output: str) -> int:
    return int(re.search(r"(\d+) request\(s\)", output).group(1))


def stocks(n: int) -> list[str]:
    return [f"S{i:02d}:STOCK" for i in range(n)]


@pytest.mark.parametrize("how", OFFLINE)
def test_an_unreachable_provider_is_asked_once_per_run_and_said_once(offline_env, monkeypatch, capsys, db, how):
    monkeypatch.setenv("YAHOO_BASE_URL", OFFLINE[how])
    code = run_etl("fetch_historical_market_data", "--symbols", ",".join(stocks(6)),
                   "--start", START.isoformat(), "--end", END.isoformat())
    out, err = capsys.readouterr()
    assert code == 1, err
    assert requests_made(out) == RETRIES + 1
    said = [line for line in err.splitlines() if "cannot connect" in line]
    assert len(said) == 1 and "/v8/finance" not in said[0], err
    assert "0 ok, 6 failed" in err
    failures = scalar(db, "SELECT failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1")
    assert len(failures) == 6 and all("yahoo: cannot connect" in f["error"] for f in failures)


def test_the_next_provider_of_the_chain_serves_the_rest_without_asking_the_unreachable_one_again(
        offline_env, monkeypatch, capsys, db, fake_api):
    YahooServer(fake_api)
    for name, value in {"YAHOO_BASE_URL": fake_api.base_url, "TWELVE_DATA_BASE_URL": UNREACHABLE,
                        "TWELVE_DATA_API_KEY": "td-test-key", "STOCK_PROVIDERS": "twelvedata,yahoo",
                        "PROVIDER_RATE_LIMITS": "twelvedata=6000,yahoo=6000"}.items():
        monkeypatch.setenv(name, value)
    code = run_etl("fetch_historical_market_data", "--symbols", ",".join(stocks(5)),
                   "--start", START.isoformat(), "--end", END.isoformat())
    out, err = capsys.readouterr()
    assert code == 0, err
    assert requests_made(out) == (RETRIES + 1) + 5
    assert rows(db, "SELECT DISTINCT source FROM market_data") == [("yahoo",)]
    assert len([line for line in err.splitlines() if "cannot connect" in line]) == 1


def test_an_unreachable_provider_costs_the_quote_job_one_probe_for_every_batch(offline_env, monkeypatch, capsys,
                                                                              db):
    monkeypatch.setenv("YAHOO_BASE_URL", OFFLINE["dns"])
    assert run_etl("assets", "add", *stocks(45)) == 0
    capsys.readouterr()
    assert run_etl("fetch_market_data") == 1
    out, err = capsys.readouterr()
    assert requests_made(out) == RETRIES + 1
    assert len([line for line in err.splitlines() if "cannot connect" in line]) == 1, err
