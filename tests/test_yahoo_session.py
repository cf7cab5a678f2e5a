"""Yahoo's cookie and crumb: obtained when Yahoo asks, renewed once on refusal, kept for later runs, never shown."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from support.db import row_count, rows, scalar
from support.keyless_servers import serve_frankfurter
from support.runner import PYTHON, run_etl, run_etl_process
from support.yahoo_server import YahooServer

QUOTES = "fetch_market_data"


@pytest.fixture
def yahoo(fake_api, etl_env, monkeypatch):
    server = YahooServer(fake_api)
    server.quote_time = datetime.combine(date.today(), time(10), ZoneInfo("America/New_York"))
    for name, value in {"YAHOO_BASE_URL": fake_api.base_url, "YAHOO_COOKIE_URL": server.cookie_url}.items():
        monkeypatch.setenv(name, value)
        etl_env[name] = value
    server.session_required.add("spark")
    assert run_etl("assets", "add", "AAPL:STOCK", "BTC:CRYPTO") == 0
    return server


def stored_session(db) -> tuple | None:
    found = rows(db, "SELECT cookies, crumb FROM provider_sessions WHERE provider = 'yahoo'")
    return found[0] if found else None


def crumbs_sent(server) -> list[str | None]:
    return [r.query.get("crumb") for r in server.spark_requests()]


def test_quotes_load_when_spark_needs_a_cookie_and_crumb_and_the_next_run_reuses_them(yahoo, db):
    assert run_etl(QUOTES) == 0
    assert row_count(db, "market_data") == 2
    assert (len(yahoo.cookie_requests()), len(yahoo.crumb_requests())) == (1, 1)
    cookies, crumb = stored_session(db)
    assert crumb == "CrumbKestrel0001" and cookies["A3"].startswith("d=AQABBCookieWombat0001")
    yahoo.api.reset()
    assert run_etl(QUOTES) == 0
    assert (yahoo.cookie_requests(), yahoo.crumb_requests()) == ([], [])
    assert crumbs_sent(yahoo) == ["CrumbKestrel0001"]


def test_a_stale_crumb_refused_once_is_renewed_so_a_crumb_is_fetched_at_most_twice_a_run(yahoo, db):
    yahoo.refuse_first_crumb_once = True
    assert run_etl(QUOTES) == 0
    assert row_count(db, "market_data") == 2
    assert len(yahoo.crumb_requests()) == 2
    assert crumbs_sent(yahoo) == [None, "CrumbKestrel0001", "CrumbKestrel0002"]
    yahoo.api.reset()
    assert run_etl(QUOTES) == 0
    assert yahoo.crumb_requests() == [] and crumbs_sent(yahoo) == ["CrumbKestrel0002"]


def test_a_crumb_expired_since_the_last_run_is_renewed_once_and_stored_again(yahoo, db):
    assert run_etl(QUOTES) == 0
    yahoo.expire_sessions()
    yahoo.api.reset()
    assert run_etl(QUOTES) == 0
    assert len(yahoo.crumb_requests()) == 1
    assert crumbs_sent(yahoo) == ["CrumbKestrel0001", "CrumbKestrel0002"]
    assert stored_session(db)[1] == "CrumbKestrel0002"


def test_the_chart_endpoint_gets_the_session_too_when_it_asks(yahoo, db):
    yahoo.session_required.add("chart")
    assert run_etl("fetch_historical_market_data", "--start", "2024-03-04", "--end", "2024-03-08") == 0
    assert row_count(db, "market_data") == 10
    assert len(yahoo.crumb_requests()) == 1


def test_a_dry_run_uses_the_stored_session_but_does_not_store_one(yahoo, db):
    assert run_etl(QUOTES, "--dry-run") == 0
    assert len(yahoo.crumb_requests()) == 1 and stored_session(db) is None


def test_a_yahoo_refusal_without_a_session_to_be_had_is_not_fatal(yahoo, db, monkeypatch):
    """Yahoo's 401 on the chart and no cookie to be had: stocks fail alone (exit 3), forex comes
    from Frankfurter, and Yahoo is asked no more in the run."""
    monkeypatch.setenv("FRANKFURTER_BASE_URL", yahoo.base_url)
    serve_frankfurter(yahoo.api)
    yahoo.session_required.add("chart")
    yahoo.api.route("/fc", "<html>no cookie for you</html>", status=404)
    assert run_etl("fetch_historical_market_data", "--symbols", "AAPL:STOCK,MSFT:STOCK,EUR/USD:FOREX",
                   "--start", "2024-03-04", "--end", "2024-03-08") == 3
    assert set(rows(db, "SELECT DISTINCT symbol, source FROM market_data")) == {("EUR/USD", "frankfurter")}
    failures = scalar(db, "SELECT failures FROM etl_job_runs ORDER BY run_id DESC LIMIT 1")
    assert sorted(f["symbol"] for f in failures) == ["AAPL", "MSFT"]
    assert all("yahoo: 401" in f["error"] and "Invalid Cookie" in f["error"] for f in failures)
    assert len(yahoo.cookie_requests()) <= 2  # one per fetch thread at most before Yahoo is marked down


def test_the_cookie_and_crumb_appear_in_no_log_line_or_stored_error(yahoo, db, etl_env):
    """Spark refuses even a fresh crumb (its messages carry the crumb in the URL): quotes come from the chart."""
    yahoo.refuse_first_crumb_once = True
    yahoo.spark_refusal = 401
    etl_env["LOG_LEVEL"] = "DEBUG"
    yahoo.session_required.add("chart")
    result = run_etl_process([PYTHON, "-m", "etl", QUOTES], etl_env)
    assert result.returncode == 0, result.stderr
    secrets = [crumb for crumb in yahoo.sessions.values()] + list(yahoo.sessions)
    assert secrets and any(crumbs_sent(yahoo))
    output = result.stdout + result.stderr
    assert "crumb=***" in output
    assert [s for s in secrets if s in output] == []
    stored = str(rows(db, "SELECT failures, error FROM etl_job_runs")) + str(rows(db, "SELECT last_error FROM asset"))
    assert [s for s in secrets if s in stored] == []
