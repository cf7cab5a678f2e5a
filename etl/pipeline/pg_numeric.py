"""PostgreSQL's `numeric` arithmetic in Python, digit for digit, for the few operations the pipeline
computes on both sides (a history row's change: `pipeline.moves` and `store.fill_history_changes`).

Addition, subtraction and multiplication of numerics are exact. Division is not:
PostgreSQL rounds the quotient (half away from zero) to a scale it picks from the
operands (`select_div_scale` in its numeric.c): at least 16 significant digits, and
never fewer decimals than either operand shows. `divide` picks the same scale;
`round_half_up` is `round(x, n)`.

Values are `Scaled` pairs (m, s) meaning m / 10**s with s >= 0, PostgreSQL's digits
and `dscale`: plain integers, so a backfill's million divisions cost little.
"""

from __future__ import annotations

from decimal import Decimal

Scaled = tuple[int, int]

MIN_SIGNIFICANT_DIGITS = 16   # NUMERIC_MIN_SIG_DIGITS
MAX_DISPLAY_SCALE = 1000      # NUMERIC_MAX_DISPLAY_SCALE
DIGITS_PER_WORD = 4           # numerics are stored in base-10000 words (DEC_DIGITS)
_POWERS = [10 ** n for n in range(2 * MAX_DISPLAY_SCALE + 64)]


def scaled(value: Decimal) -> Scaled:
    """A finite Decimal as (digits, scale), the scale being the decimals written (none for an integer)."""
    text = str(value)
    if "E" in text:
        sign, digits, exponent = value.as_tuple()
        mantissa = -int("".join(map(str, digits))) if sign else int("".join(map(str, digits)))
        return (mantissa * _POWERS[exponent], 0) if exponent >= 0 else (mantissa, -exponent)
    point = text.find(".")
    if point < 0:
        return int(text), 0
    return int(text[:point] + text[point + 1:]), len(text) - point - 1


def to_decimal(value: Scaled) -> Decimal:
    mantissa, scale = value
    return Decimal(mantissa).scaleb(-scale)


def _first_word(value: Scaled) -> tuple[int, int]:
    """(weight, first word) of |value| in base 10000, as numeric.c sees them; (0, 0) for zero."""
    mantissa, scale = value
    mantissa = abs(mantissa)
    if not mantissa:
        return 0, 0
    length = len(str(mantissa))
    weight = (length - 1 - scale) // DIGITS_PER_WORD
    below = scale + DIGITS_PER_WORD * weight    # digits of the mantissa after the first word
    return weight, (mantissa // _POWERS[below] if below >= 0 else mantissa * _POWERS[-below])


def division_scale(dividend: Scaled, divisor: Scaled) -> int:
    """The scale PostgreSQL rounds `dividend / divisor` to (`select_div_scale`)."""
    weight1, first1 = _first_word(dividend)
    weight2, first2 = _first_word(divisor)
    quotient_weight = weight1 - weight2 - (1 if first1 <= first2 else 0)
    places = MIN_SIGNIFICANT_DIGITS - quotient_weight * DIGITS_PER_WORD
    return min(max(places, dividend[1], divisor[1], 0), MAX_DISPLAY_SCALE)


def _rounded_quotient(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero (denominator > 0)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def divide(dividend: Scaled, divisor: Scaled) -> Scaled:
    """`dividend / divisor` as PostgreSQL computes it for numerics (`divisor` not zero)."""
    places = division_scale(dividend, divisor)
    numerator = dividend[0] * _POWERS[places + divisor[1] - dividend[1]]
    quotient = _rounded_quotient(abs(numerator), abs(divisor[0]))
    return (-quotient if (numerator < 0) != (divisor[0] < 0) else quotient), places


def round_half_up(value: Scaled, places: int) -> Scaled:
    """PostgreSQL's `round(value, places)` for 0 <= places <= 1000: half away from zero, `places` decimals."""
    mantissa, scale = value
    if places >= scale:
        return mantissa * _POWERS[places - scale], places
    return _rounded_quotient(mantissa, _POWERS[scale - places]), places
