"""Deterministic mock transactions: one account after another, each in date order.

Everything is drawn from one `random.Random(seed)`, so the same seed and the
same inputs give the same rows in the same order. Balances are tracked while
generating, as exact integers of each unit's smallest step (cents; 1e-4 share;
1e-8 coin), and written as decimal text: no float anywhere. An outflow (a
withdrawal, a buy's cash leg, a sale) never exceeds what this run has put into
the account by that day, so its balances never go negative; added on top of an
existing account whose own history never goes negative, neither does the sum.

Each account opens with a deposit of the start balance on the first day. Then,
each month, exactly `per_month` rows (fewer only with `stocks_only`, where a
trade that cannot be paid for is left out):
- mixed (default): a salary deposit on the month's first day, then deposits,
  withdrawals, buys and sells on random days; a buy or sell is two rows on the
  same day, the asset leg and right after it the cash leg at that day's price,
  rounded half up to the cent; an event that is not possible (nothing to sell,
  no cash) becomes a deposit;
- cash_only: the salary deposit, other deposits and withdrawals;
- stocks_only: buys and sells only, paid from the opening deposit.
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Iterator
from uuid import UUID

from etl.mock.prices import PriceBook
from etl.models import Asset
from etl.utils.db_utils import copy_value

# Transaction units: the currency code for cash, SHARES for stocks and ETFs, COINS for crypto.
UNITS = {"STOCK": "SHARES", "ETF": "SHARES", "CRYPTO": "COINS"}
QUANTITY_DECIMALS = {"STOCK": 4, "ETF": 4, "CRYPTO": 8}
CASH_DECIMALS = 2

_EXACT = Context(prec=80, rounding=ROUND_HALF_UP)
_CENT = Decimal("0.01")
_MIXED_EVENTS = ("deposit", "withdrawal", "buy", "sell")
_MIXED_WEIGHTS = (15, 15, 40, 30)

# account_id, date, symbol, asset_type, credit, debit, unit: each already in COPY text format.
Row = tuple[str, str, str, str, str, str, str]


@dataclass(frozen=True)
class Plan:
    """What to generate: accounts, the span of days, the volume and the assets."""

    accounts: tuple[UUID, ...]
    first_day: date
    last_day: date
    per_month: int
    currency: str
    start_balance_cents: int
    assets: tuple[Asset, ...]
    mode: str = "mixed"


def new_account_ids(rng: random.Random, count: int) -> list[UUID]:
    """`count` version-4 UUIDs drawn from `rng` (the same seed, the same ids)."""
    return [UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]


def month_starts(first_day: date, last_day: date) -> list[date]:
    """The first day of every month touching [first_day, last_day]."""
    months = []
    month = first_day.replace(day=1)
    while month <= last_day:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def generate_rows(rng: random.Random, plan: Plan, prices: PriceBook) -> Iterator[Row]:
    """Every row of `plan`, account by account, each account's rows in date order."""
    tradable = () if plan.mode == "cash_only" else plan.assets
    for account in plan.accounts:
        yield from _AccountSimulation(rng, plan, prices, tradable, str(account)).rows()


def fixed(amount: int, decimals: int) -> str:
    """An integer count of 10^-decimals steps as decimal text: fixed(12345, 2) == '123.45'."""
    if decimals == 0:
        return str(amount)
    text = str(amount).rjust(decimals + 1, "0")
    return f"{text[:-decimals]}.{text[-decimals:]}"


class _AccountSimulation:
    """One account's history, generated day by day with its balances."""

    def __init__(self, rng: random.Random, plan: Plan, prices: PriceBook, tradable: tuple[Asset, ...],
                 account: str):
        self.rng, self.plan, self.prices, self.tradable, self.account = rng, plan, prices, tradable, account
        self.cash = 0
        self.held: dict[Asset, int] = {}
        self.salary_cents = rng.randint(1_500, 6_000) * 100
        self.symbols = {a: copy_value(a.symbol) for a in tradable}
        self.currency = copy_value(plan.currency)

    def rows(self) -> Iterator[Row]:
        plan = self.plan
        if plan.start_balance_cents > 0:
            yield self._cash_row(plan.first_day, plan.start_balance_cents, 0)
            self.cash += plan.start_balance_cents
        for month in month_starts(plan.first_day, plan.last_day):
            first = max(month, plan.first_day)
            last = min(month.replace(day=calendar.monthrange(month.year, month.month)[1]), plan.last_day)
            yield from self._month(first, last)

    def _month(self, first: date, last: date) -> Iterator[Row]:
        rng, plan = self.rng, self.plan
        slots = plan.per_month
        if slots <= 0:
            return
        span = (last - first).days
        days = sorted(first + timedelta(days=rng.randint(0, span)) for _ in range(slots))
        position = 0
        if plan.mode != "stocks_only":
            yield self._deposit(first, self.salary_cents)
            position = 1
        while position < slots:
            day = days[position]
            left = slots - position
            if plan.mode == "cash_only":
                event = rng.choice(("deposit", "withdrawal"))
            elif plan.mode == "stocks_only":
                event = rng.choice(("buy", "sell"))
            else:
                event = rng.choices(_MIXED_EVENTS, _MIXED_WEIGHTS)[0]
            rows = None
            if event in ("buy", "sell") and left >= 2:
                rows = self._buy(day) if event == "buy" else self._sell(day)
            elif event == "withdrawal":
                rows = self._withdrawal(day)
            elif event == "deposit" and plan.mode != "stocks_only":
                rows = [self._deposit(day, rng.randint(2_000, 100_000))]
            if rows is None:
                if plan.mode == "stocks_only":
                    position += 1
                    continue
                rows = [self._deposit(day, rng.randint(2_000, 100_000))]
            yield from rows
            position += len(rows)

    def _deposit(self, day: date, cents: int) -> Row:
        self.cash += cents
        return self._cash_row(day, cents, 0)

    def _withdrawal(self, day: date) -> list[Row] | None:
        if self.cash < 100:
            return None
        cents = self.rng.randint(100, max(100, self.cash * 3 // 10))
        self.cash -= cents
        return [self._cash_row(day, 0, cents)]

    def _buy(self, day: date) -> list[Row] | None:
        rng = self.rng
        priced = [(a, p) for a in self.tradable if (p := self.prices.price(a, day)) is not None]
        if not priced or self.cash < 100:
            return None
        asset, price = rng.choice(priced)
        budget = self.cash * rng.randint(5, 30) // 100
        decimals = QUANTITY_DECIMALS[asset.asset_type]
        quantity = int(_EXACT.divide_int(Decimal(budget).scaleb(decimals - 2), price))
        if quantity <= 0:
            return None
        cost = _cents(quantity, decimals, price)
        if cost <= 0 or cost > self.cash:
            return None
        self.cash -= cost
        self.held[asset] = self.held.get(asset, 0) + quantity
        return [self._asset_row(day, asset, quantity, 0), self._cash_row(day, 0, cost)]

    def _sell(self, day: date) -> list[Row] | None:
        rng = self.rng
        owned = [(a, p) for a in self.tradable
                 if self.held.get(a, 0) > 0 and (p := self.prices.price(a, day)) is not None]
        if not owned:
            return None
        asset, price = rng.choice(owned)
        held = self.held[asset]
        quantity = held if rng.random() < 0.3 else held * rng.randint(10, 90) // 100
        quantity = quantity or held
        decimals = QUANTITY_DECIMALS[asset.asset_type]
        proceeds = _cents(quantity, decimals, price)
        if proceeds <= 0:
            return None
        self.held[asset] = held - quantity
        self.cash += proceeds
        return [self._asset_row(day, asset, 0, quantity), self._cash_row(day, proceeds, 0)]

    def _cash_row(self, day: date, credit: int, debit: int) -> Row:
        return (self.account, day.isoformat(), self.currency, "CASH", fixed(credit, CASH_DECIMALS),
                fixed(debit, CASH_DECIMALS), self.currency)

    def _asset_row(self, day: date, asset: Asset, credit: int, debit: int) -> Row:
        decimals = QUANTITY_DECIMALS[asset.asset_type]
        return (self.account, day.isoformat(), self.symbols[asset], asset.asset_type, fixed(credit, decimals),
                fixed(debit, decimals), UNITS[asset.asset_type])


def _cents(quantity: int, decimals: int, price: Decimal) -> int:
    """quantity × price in cents, rounded half up (as SQL round(x, 2) does for positives)."""
    value = _EXACT.multiply(Decimal(quantity).scaleb(-decimals), price)
    return int(value.quantize(_CENT, context=_EXACT).scaleb(2))
