"""The market-data providers: the registry of them, by name.

`PROVIDERS` is the one list of providers. Each class declares its name, key and
base-URL settings, covered asset types and limits (see `base.Provider`);
`etl.config`, the CLI's choices, the test harness and the README checks all
read them from here. Adding a provider is its module, its test fixtures and
one line below.
"""

from __future__ import annotations

from etl.providers.alphavantage import AlphaVantageProvider
from etl.providers.base import Provider
from etl.providers.coingecko import CoinGeckoProvider
from etl.providers.frankfurter import FrankfurterProvider
from etl.providers.twelvedata import TwelveDataProvider
from etl.providers.yahoo import YahooProvider

# In the order error messages and `--provider` choices list them; yahoo, keyless, is the default.
PROVIDERS: dict[str, type[Provider]] = {cls.name: cls for cls in (
    YahooProvider,
    TwelveDataProvider,
    CoinGeckoProvider,
    FrankfurterProvider,
    AlphaVantageProvider,
)}


def provider_class(name: str) -> type[Provider]:
    """The provider class registered as `name` (KeyError for an unknown name)."""
    return PROVIDERS[name]
