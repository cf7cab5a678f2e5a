"""The named statements on the `asset` table, shared by the CLI and the jobs."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from etl.models import AnswerMeta, Asset

_ASSET_COLUMNS = "symbol, asset_type, name, currency, exchange, provider, provider_symbol"


def active_assets(conn, asset_types: Sequence[str]) -> list[Asset]:
    """The active assets of the given types, in symbol order."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_ASSET_COLUMNS} FROM asset WHERE active AND asset_type = ANY(%s) "
                    "ORDER BY asset_type, symbol", (list(asset_types),))
        return [Asset(*row) for row in cur.fetchall()]


def stored_assets(conn, assets: Iterable[Asset]) -> list[Asset]:
    """`assets` completed with what the asset table knows of them (provider, provider_symbol …)."""
    wanted = list(assets)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_ASSET_COLUMNS} FROM asset WHERE (symbol, asset_type) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                    ([a.symbol for a in wanted], [a.asset_type for a in wanted]))
        known = {(row[0], row[1]): Asset(*row) for row in cur.fetchall()}
    return [known.get((a.symbol, a.asset_type), a) for a in wanted]


def register_assets(cur, assets: Iterable[Asset], *, activate: bool = True) -> None:
    """Insert assets (or reactivate them); given names and providers overwrite, absent ones keep."""
    rows = [(a.symbol, a.asset_type, a.name, a.currency, a.exchange, a.provider, a.provider_symbol)
            for a in assets]
    if not rows:
        return
    cur.execute(f"""
        INSERT INTO asset ({_ASSET_COLUMNS}, active)
        SELECT s, t, n, c, e, p, ps, %s
          FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
               AS r(s, t, n, c, e, p, ps)
        ON CONFLICT (symbol, asset_type) DO UPDATE SET
            name = coalesce(EXCLUDED.name, asset.name),
            currency = coalesce(EXCLUDED.currency, asset.currency),
            exchange = coalesce(EXCLUDED.exchange, asset.exchange),
            provider = coalesce(EXCLUDED.provider, asset.provider),
            provider_symbol = coalesce(EXCLUDED.provider_symbol, asset.provider_symbol),
            active = asset.active OR EXCLUDED.active,
            updated_at = now()
        WHERE (asset.name, asset.currency, asset.exchange, asset.provider, asset.provider_symbol, asset.active)
              IS DISTINCT FROM
              (coalesce(EXCLUDED.name, asset.name), coalesce(EXCLUDED.currency, asset.currency),
               coalesce(EXCLUDED.exchange, asset.exchange), coalesce(EXCLUDED.provider, asset.provider),
               coalesce(EXCLUDED.provider_symbol, asset.provider_symbol), asset.active OR EXCLUDED.active)""",
                [activate, *map(list, zip(*rows))])


def describe_assets(cur, described: Mapping[tuple[str, str], AnswerMeta]) -> int:
    """Fill the empty name, currency, exchange and exchange_timezone of assets with what a provider's
    answer said of them ((symbol, asset_type) → AnswerMeta); a value already there — the user's
    `--name`, or the first answer's — is never overwritten. Returns how many assets changed."""
    rows = [(symbol, asset_type, meta.name, meta.currency, meta.exchange, meta.exchange_timezone)
            for (symbol, asset_type), meta in described.items() if not meta.empty]
    if not rows:
        return 0
    cur.execute("""
        UPDATE asset SET name = coalesce(asset.name, d.name),
                         currency = coalesce(asset.currency, d.currency),
                         exchange = coalesce(asset.exchange, d.exchange),
                         exchange_timezone = coalesce(asset.exchange_timezone, d.zone),
                         updated_at = now()
          FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
               AS d(symbol, asset_type, name, currency, exchange, zone)
         WHERE asset.symbol = d.symbol AND asset.asset_type = d.asset_type
           AND (asset.name IS NULL AND d.name IS NOT NULL OR asset.currency IS NULL AND d.currency IS NOT NULL
                OR asset.exchange IS NULL AND d.exchange IS NOT NULL
                OR asset.exchange_timezone IS NULL AND d.zone IS NOT NULL)""", list(map(list, zip(*rows))))
    return max(cur.rowcount, 0)


def deactivate_assets(cur, assets: Iterable[Asset]) -> int:
    """Mark assets inactive (their history stays); return how many were active."""
    wanted = list(assets)
    cur.execute("""
        UPDATE asset SET active = false, updated_at = now()
         WHERE active AND (symbol, asset_type) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
                ([a.symbol for a in wanted], [a.asset_type for a in wanted]))
    return cur.rowcount


def record_asset_errors(cur, errors: dict[Asset, str | None]) -> None:
    """Set (or, with None, clear) `last_error` for each asset; None also stamps `last_success_at`."""
    if not errors:
        return
    cur.execute("""
        UPDATE asset SET last_error = e.error,
                         last_error_at = CASE WHEN e.error IS NULL THEN NULL ELSE now() END,
                         last_success_at = CASE WHEN e.error IS NULL THEN now() ELSE asset.last_success_at END
          FROM unnest(%s::text[], %s::text[], %s::text[]) AS e(symbol, asset_type, error)
         WHERE asset.symbol = e.symbol AND asset.asset_type = e.asset_type
           AND (e.error IS NULL OR asset.last_error IS DISTINCT FROM e.error)""",
                ([a.symbol for a in errors], [a.asset_type for a in errors], list(errors.values())))
