"""Credit amounts: exact decimals with at most 4 places (product rules §4), stored as whole numbers of
ten-thousandths ("units") so that sums in either database are exact and never floats.

Over the wire (HTTP and RPC) an amount is a string such as "12.5000"; requests may also send a JSON
number without an exponent (the gateway parses JSON numbers as Decimal, never as float).
"""
import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from common.errors import ValidationFailed

PLACES = 4
UNITS_PER_CREDIT = 10 ** PLACES
MAX_AMOUNT = Decimal("1000000000")            # one grant, spend or monthly limit: at most a billion
_SMALLEST = Decimal(1).scaleb(-PLACES)
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
MAX_BALANCE_UNITS = 10 ** 12 * UNITS_PER_CREDIT   # what one account may hold


def parse_amount(value, field="amount", allow_zero=False):
    """Units of a positive (or, with allow_zero, non-negative) amount; ValidationFailed otherwise."""
    if value is None:
        raise ValidationFailed(f"{field} is required.", code="amount_required", field=field)
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValidationFailed(f"{field} must be a decimal number written as a string, e.g. \"12.50\".",
                               code="invalid_amount", field=field)
    if isinstance(value, str):
        # Plain digits only: Decimal() would also take "1_0.5", "1e3" or full-width digits.
        if not _PLAIN_DECIMAL.fullmatch(value.strip()):
            raise ValidationFailed(f"{field} is not a decimal number such as \"12.50\".", code="invalid_amount",
                                   field=field)
        value = value.strip()
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValidationFailed(f"{field} is not a decimal number.", code="invalid_amount", field=field)
    if not number.is_finite():
        raise ValidationFailed(f"{field} is not a decimal number.", code="invalid_amount", field=field)
    if number < 0 or (number == 0 and not allow_zero):
        raise ValidationFailed(f"{field} must be {'zero or more' if allow_zero else 'more than zero'}.",
                               code="invalid_amount", field=field)
    if number > MAX_AMOUNT:
        raise ValidationFailed(f"{field} must be at most {MAX_AMOUNT}.", code="amount_too_large", field=field)
    # Compared exactly (not multiplied out: Decimal arithmetic rounds to 28 digits, which would let
    # "1.000000000000000000000000000001" pass as 1).
    whole_units = number.quantize(_SMALLEST, rounding=ROUND_DOWN)
    if whole_units != number:
        raise ValidationFailed(f"{field} may have at most {PLACES} decimal places.", code="too_many_decimal_places",
                               field=field)
    return int(whole_units.scaleb(PLACES))


def format_amount(units):
    """"12.5000" for 125000 units (None stays None: "no limit")."""
    if units is None:
        return None
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), UNITS_PER_CREDIT)
    return f"{sign}{whole}.{fraction:0{PLACES}d}"
