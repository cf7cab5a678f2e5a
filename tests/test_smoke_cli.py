from support.db import row_count
from support.runner import run_etl


def test_migrate_then_assets_add_list_remove(etl_env, db, capsys):
    assert run_etl("migrate") == 0
    assert "up to date" in capsys.readouterr().out
    assert run_etl("assets", "add", "AAPL:STOCK,BTC:CRYPTO", "EUR/USD:FOREX") == 0
    assert row_count(db, "asset", "active") == 3
    assert run_etl("assets", "remove", "BTC:CRYPTO") == 0
    assert row_count(db, "asset", "active") == 2
    assert run_etl("assets", "list") == 0
    assert "EUR/USD" in capsys.readouterr().out
