"""financial-tracker-etl: market data and mock transactions into PostgreSQL."""

__version__ = "0.1.0"
