"""Deterministic mock transactions: one account after another, each in date order.

Everything random is drawn from one `random.Random(seed)`, so the same seed and
the same inputs give the same rows in the same order. Balances are tracked
while generating, as exact integers of each unit's smallest step (cents; 1e-4
share; 1e-8 coin), and written as decimal text: no float anywhere. An outflow
(a withdrawal, a buy's cash leg, a sale) never exceeds what this run has put
into the account by that day, so its balances never go negative; added on top
of an existing account whose own history never goes negative, neither does the
sum. Rows stream out as they are made: memory does not grow with their number.

Each account opens with a deposit of the start balance on the first day. Then,
each month, exactly K rows (the current month its share of K, see
etl.mock.trading_days; fewer only with `stocks_only`, where a trade that cannot
be paid for is left out), on days the calendar allows:
- mixed (default): a salary on the month's first business day, then deposits,
  withdrawals, buys and sells on random days; a buy or sell is two rows on the
  same day, the asset leg and right after it the cash leg at that day's price,
  rounded half up to the cent; a sale with nothing to sell becomes a buy and
  the other way round, and a trade that is not possible at all a deposit;
- cash_only: the salary, other deposits and withdrawals;
- stocks_only: buys and sells only, paid from the opening deposit.
Dividends and splits (etl.mock.actions) come on top of the K rows.

Every row has a kind (transactions.kind) and a short description: `Salary`,
`Buy 3 AAPL @ 187.44` (both legs of a trade), `Split 4:1 AAPL`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Iterator, Sequence
from uuid import UUID

from etl.mock.actions import CorporateAction, ratio_text
from etl.mock.prices import PriceBook
from etl.mock.trading_days import first_business_day, month_end, rows_in_month
from etl.models import Asset
from etl.utils.copy_format import copy_value

# Transaction units: the currency code for cash, SHARES for stocks and ETFs, COINS for crypto.
UNITS = {"STOCK": "SHARES", "ETF": "SHARES", "CRYPTO": "COINS"}
QUANTITY_DECIMALS = {"STOCK": 4, "ETF": 4, "CRYPTO": 8}
CASH_DECIMALS = 2

_EXACT = Context(prec=80, rounding=ROUND_HALF_UP)
_CENT = Decimal("0.01")
_TRADES = ("buy", "sell")
_EVENTS = {"mixed": (("deposit", "withdrawal", "buy", "sell"), (15, 15, 40, 30)),
           "cash_only": (("deposit", "withdrawal"), (1, 1)),
           "stocks_only": (("buy", "sell"), (1, 1))}

# account_id, date, symbol, asset_type, credit, debit, unit, kind, description: each in COPY text format.
Row = tuple[str, str, str, str, str, str, str, str, str]


@dataclass(frozen=True)
class Plan:
    """What to generate: accounts, the span of days, the volume and the assets."""

    accounts: tuple[UUID, ...]
    first_day: date
    last_day: date          # today: nothing is dated later
    per_month: int
    currency: str
    start_balance_cents: int
    assets: tuple[Asset, ...]
    mode: str = "mixed"
    actions: tuple[CorporateAction, ...] = ()


@dataclass(frozen=True)
class _Month:
    """One month's span within the plan, its number of rows and the days each kind of event may use."""

    slots: int
    days: tuple[date, ...]
    trade_days: tuple[date, ...]
    salary_day: date | None


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
    months = _months(plan, prices, tradable)
    for account in plan.accounts:
        yield from _AccountSimulation(rng, plan, prices, tradable, months, str(account)).rows()


def fixed(amount: int, decimals: int) -> str:
    """An integer count of 10^-decimals steps as decimal text: fixed(12345, 2) == '123.45'."""
    if decimals == 0:
        return str(amount)
    text = str(amount).rjust(decimals + 1, "0")
    return f"{text[:-decimals]}.{text[-decimals:]}"


def quantity_text(amount: int, decimals: int) -> str:
    """A quantity for people: quantity_text(30000, 4) == '3', quantity_text(15, 4) == '0.0015'."""
    return format(Decimal(amount).scaleb(-decimals).normalize(), "f")


def price_text(price: Decimal) -> str:
    """A price for people: cents from 1 up (187.44), else its digits (0.000123)."""
    if price >= 1:
        return format(price.quantize(_CENT, context=_EXACT), "f")
    return format(price.normalize(), "f")


def _months(plan: Plan, prices: PriceBook, tradable: Sequence[Asset]) -> list[_Month]:
    months = []
    for start in month_starts(plan.first_day, plan.last_day):
        first, last = max(start, plan.first_day), min(month_end(start), plan.last_day)
        days = tuple(first + timedelta(days=offset) for offset in range((last - first).days + 1))
        trade_days = tuple(d for d in days if any(prices.trades(a, d) is not None for a in tradable))
        salary = first_business_day(first)
        months.append(_Month(rows_in_month(plan.per_month, start, plan.last_day), days, trade_days,
                             salary if salary <= last else None))
    return months


class _AccountSimulation:
    """One account's history, generated event by event in date order with its balances."""

    def __init__(self, rng: random.Random, plan: Plan, prices: PriceBook, tradable: tuple[Asset, ...],
                 months: list[_Month], account: str):
        self.rng, self.plan, self.prices, self.tradable, self.account = rng, plan, prices, tradable, account
        self.months = months
        self.cash = 0
        self.held: dict[Asset, int] = {}
        self.salary_cents = rng.randint(1_500, 6_000) * 100
        self.symbols = {a: copy_value(a.symbol) for a in tradable}
        self.currency = copy_value(plan.currency)
        self.actions_done = 0

    def rows(self) -> Iterator[Row]:
        plan = self.plan
        if plan.start_balance_cents > 0:
            yield self._deposit(plan.first_day, plan.start_balance_cents, "deposit", "Opening deposit")
        for month in self.months:
            yield from self._month(month)
        yield from self._actions_until(plan.last_day)

    def _month(self, month: _Month) -> Iterator[Row]:
        if month.slots <= 0:
            return
        events = self._draw_events(month)
        written = 0
        for day, _, event in events:
            yield from self._actions_until(day)
            rows = self._event(day, event)
            yield from rows
            written += len(rows)
        if self.plan.mode != "stocks_only" and written < month.slots:
            later = [d for d in month.days if d >= (events[-1][0] if events else month.days[0])]
            for day in sorted(self.rng.choice(later) for _ in range(month.slots - written)):
                yield from self._actions_until(day)
                yield self._deposit(day)

    def _draw_events(self, month: _Month) -> list[tuple[date, int, str]]:
        """The month's events, each on a day its kind allows, in date order; trades count two rows."""
        rng, mode = self.rng, self.plan.mode
        kinds, weights = _EVENTS[mode]
        events: list[tuple[date, int, str]] = []
        used = 0
        if mode != "stocks_only" and month.salary_day is not None:
            events.append((month.salary_day, 0, "salary"))
            used = 1
        while used < month.slots:
            event = rng.choices(kinds, weights)[0]
            if event in _TRADES and (month.slots - used < 2 or not month.trade_days):
                if mode == "stocks_only":
                    break
                event = "deposit"
            day = rng.choice(month.trade_days if event in _TRADES else month.days)
            events.append((day, len(events), event))
            used += 2 if event in _TRADES else 1
        events.sort()
        return events

    def _event(self, day: date, event: str) -> list[Row]:
        if event == "salary":
            return [self._deposit(day, self.salary_cents, "salary", "Salary")]
        if event == "deposit":
            return [self._deposit(day)]
        if event == "withdrawal":
            return self._withdrawal(day) or [self._deposit(day)]
        first, second = (self._buy, self._sell) if event == "buy" else (self._sell, self._buy)
        rows = first(day) or second(day)
        if rows:
            return rows
        return [] if self.plan.mode == "stocks_only" else [self._deposit(day)]

    def _deposit(self, day: date, cents: int | None = None, kind: str = "deposit",
                 description: str = "Deposit") -> Row:
        cents = self.rng.randint(2_000, 100_000) if cents is None else cents
        self.cash += cents
        return self._cash_row(day, cents, 0, kind, description)

    def _withdrawal(self, day: date) -> list[Row] | None:
        if self.cash < 100:
            return None
        cents = self.rng.randint(100, max(100, self.cash * 3 // 10))
        self.cash -= cents
        return [self._cash_row(day, 0, cents, "withdrawal", "Withdrawal")]

    def _buy(self, day: date) -> list[Row] | None:
        rng = self.rng
        priced = [(a, p) for a in self.tradable if (p := self.prices.trades(a, day)) is not None]
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
        description = f"Buy {quantity_text(quantity, decimals)} {asset.symbol} @ {price_text(price)}"
        return [self._asset_row(day, asset, quantity, 0, "buy", description),
                self._cash_row(day, 0, cost, "buy", description)]

    def _sell(self, day: date) -> list[Row] | None:
        rng = self.rng
        owned = [(a, p) for a in self.tradable
                 if self.held.get(a, 0) > 0 and (p := self.prices.trades(a, day)) is not None]
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
        description = f"Sell {quantity_text(quantity, decimals)} {asset.symbol} @ {price_text(price)}"
        return [self._asset_row(day, asset, 0, quantity, "sell", description),
                self._cash_row(day, proceeds, 0, "sell", description)]

    def _actions_until(self, day: date) -> Iterator[Row]:
        """The rows of the splits and dividends with ex-dates up to `day` not yet applied, in order."""
        actions = self.plan.actions
        while self.actions_done < len(actions) and actions[self.actions_done].date <= day:
            action = actions[self.actions_done]
            self.actions_done += 1
            held = self.held.get(action.asset, 0)
            if held <= 0:
                continue
            decimals = QUANTITY_DECIMALS[action.asset.asset_type]
            if action.kind == "split":
                yield from self._split(action, held, decimals)
            else:
                cents = _cents(held, decimals, action.amount)
                if cents > 0:
                    self.cash += cents
                    yield self._cash_row(action.date, cents, 0, "dividend",
                                         f"Dividend {format(action.amount.normalize(), 'f')} per share on "
                                         f"{quantity_text(held, decimals)} {action.asset.symbol}")

    def _split(self, action: CorporateAction, held: int, decimals: int) -> Iterator[Row]:
        after = int(_EXACT.multiply(Decimal(held), action.ratio).to_integral_value(rounding=ROUND_FLOOR))
        if after == held:
            return
        self.held[action.asset] = after
        description = f"Split {ratio_text(action.ratio)} {action.asset.symbol}"
        credit, debit = (after - held, 0) if after > held else (0, held - after)
        yield self._asset_row(action.date, action.asset, credit, debit, "split", description)

    def _cash_row(self, day: date, credit: int, debit: int, kind: str, description: str) -> Row:
        return (self.account, day.isoformat(), self.currency, "CASH", fixed(credit, CASH_DECIMALS),
                fixed(debit, CASH_DECIMALS), self.currency, kind, description)

    def _asset_row(self, day: date, asset: Asset, credit: int, debit: int, kind: str, description: str) -> Row:
        decimals = QUANTITY_DECIMALS[asset.asset_type]
        return (self.account, day.isoformat(), self.symbols[asset], asset.asset_type, fixed(credit, decimals),
                fixed(debit, decimals), UNITS[asset.asset_type], kind, description)


def _cents(quantity: int, decimals: int, price: Decimal) -> int:
    """quantity × price in cents, rounded half up (as SQL round(x, 2) does for positives)."""
    value = _EXACT.multiply(Decimal(quantity).scaleb(-decimals), price)
    return int(value.quantize(_CENT, context=_EXACT).scaleb(2))
