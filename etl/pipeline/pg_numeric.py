"""PostgreSQL's `numeric` arithmetic in Python, digit for digit, for the few operations the pipeline
computes on both sides (a history row's change: `pipeline.moves` and `store.fill_history_changes`).

Addition, subtraction and multiplication of numerics are exact, as they are with
`Decimal` in a wide enough context. Division is not: PostgreSQL rounds the quotient
(half away from zero) to a scale it picks from the operands (`select_div_scale` in
its numeric.c): at least 16 significant digits, and never fewer decimals than
either operand shows. `divide` picks the same scale; `round_half_up` is `round(x, n)`.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal

# Wide enough that every product and sum of table-bounded values is exact, and a truncated
# quotient keeps more digits than any scale divide rounds it to.
EXACT = Context(prec=160, rounding=ROUND_DOWN, Emax=999_999, Emin=-999_999)
MIN_SIGNIFICANT_DIGITS = 16   # NUMERIC_MIN_SIG_DIGITS
MAX_DISPLAY_SCALE = 1000      # NUMERIC_MAX_DISPLAY_SCALE
DIGITS_PER_WORD = 4           # numerics are stored in base-10000 words (DEC_DIGITS)
_QUANTA = [Decimal(1).scaleb(-places) for places in range(MAX_DISPLAY_SCALE + 1)]


def scale(value: Decimal) -> int:
    """The decimals PostgreSQL keeps for `value` (its `dscale`): those written, none for an integer."""
    return max(0, -value.as_tuple().exponent)


def _first_word(value: Decimal) -> tuple[int, int]:
    """(weight, first word) of |value| in base 10000, as numeric.c sees them; (0, 0) for zero."""
    if not value:
        return 0, 0
    weight = value.adjusted() // DIGITS_PER_WORD
    return weight, int(abs(value).scaleb(-DIGITS_PER_WORD * weight, EXACT))


def division_scale(dividend: Decimal, divisor: Decimal) -> int:
    """The scale PostgreSQL rounds `dividend / divisor` to (`select_div_scale`)."""
    weight1, first1 = _first_word(dividend)
    weight2, first2 = _first_word(divisor)
    quotient_weight = weight1 - weight2 - (1 if first1 <= first2 else 0)
    places = MIN_SIGNIFICANT_DIGITS - quotient_weight * DIGITS_PER_WORD
    return min(max(places, scale(dividend), scale(divisor), 0), MAX_DISPLAY_SCALE)


def divide(dividend: Decimal, divisor: Decimal) -> Decimal:
    """`dividend / divisor` as PostgreSQL computes it for numerics (`divisor` not zero)."""
    truncated = EXACT.divide(dividend, divisor)
    return truncated.quantize(_QUANTA[division_scale(dividend, divisor)], rounding=ROUND_HALF_UP, context=EXACT)


def round_half_up(value: Decimal, places: int) -> Decimal:
    """PostgreSQL's `round(value, places)` for 0 <= places <= 1000: half away from zero."""
    return value.quantize(_QUANTA[places], rounding=ROUND_HALF_UP, context=EXACT)
