"""The shared market-data pipeline behind the three market-data jobs.

`plan` works out which date ranges are missing (pure), `chain` asks providers
in order with fallback, `store` holds the named SQL statements, and `history`
and `quotes` put them together for the historical and the live jobs.
"""
