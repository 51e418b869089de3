"""Credit amounts (common/money.py): exact decimals with at most 4 places, held as whole "units"
(ten-thousandths). Nothing here may ever go through a float."""
from decimal import Decimal

import pytest

from common.errors import ValidationFailed
from common.money import MAX_AMOUNT, MAX_BALANCE_UNITS, UNITS_PER_CREDIT, format_amount, parse_amount


def refusal(value, **options):
    with pytest.raises(ValidationFailed) as err:
        parse_amount(value, **options)
    return err.value.code, err.value.field


# ---- parse_amount: what is accepted ------------------------------------------------------------------
@pytest.mark.parametrize("value, units", [
    ("1", 10000),
    ("12.5", 125000),
    ("12.50", 125000),
    ("0.0001", 1),
    ("1.2345", 12345),
    ("  7.25\n", 72500),                     # surrounding whitespace is trimmed
    (3, 30000),
    (Decimal("0.0001"), 1),
    (Decimal("42.4200"), 424200),
    ("1000000000", 10000000000000),         # the maximum itself
    (1000000000, 10000000000000),
    (Decimal("999999999.9999"), 9999999999999),
])
def test_amounts_parse_to_exact_units(value, units):
    assert parse_amount(value) == units


def test_units_are_ten_thousandths():
    assert UNITS_PER_CREDIT == 10000
    assert parse_amount("1") == UNITS_PER_CREDIT


def test_the_result_is_a_python_int():
    assert type(parse_amount("12.5")) is int
    assert type(parse_amount(Decimal("1"))) is int


def test_trailing_zeros_beyond_four_places_are_the_same_exact_value():
    """"1.50000000" is exactly 1.5: only digits that carry value count as places."""
    assert parse_amount("1.50000000") == 15000


def test_maximum_amount_is_one_billion():
    assert MAX_AMOUNT == Decimal("1000000000")
    assert MAX_BALANCE_UNITS == 10 ** 12 * 10 ** 4


# ---- parse_amount: what is refused -------------------------------------------------------------------
@pytest.mark.parametrize("value", [1.5, 1.0, 0.0001, float("nan"), True, False, [1], {"a": 1}, b"1"])
def test_floats_bools_and_other_types_are_invalid(value):
    assert refusal(value) == ("invalid_amount", "amount")


def test_none_is_required_not_invalid():
    assert refusal(None) == ("amount_required", "amount")


@pytest.mark.parametrize("value", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"),
                                   Decimal("Infinity"), "", "   ", "abc", "1,5", "12.5.1", "0x10"])
def test_not_finite_decimals_are_invalid(value):
    assert refusal(value) == ("invalid_amount", "amount")


@pytest.mark.parametrize("value", ["-1", "-0.0001", -5, Decimal("-3")])
def test_negatives_are_invalid(value):
    assert refusal(value) == ("invalid_amount", "amount")


@pytest.mark.parametrize("value", ["-1", "-0.0001", -5])
def test_negatives_are_invalid_even_when_zero_is_allowed(value):
    assert refusal(value, allow_zero=True) == ("invalid_amount", "amount")


@pytest.mark.parametrize("value", ["0", "0.0000", 0, Decimal("0"), "-0"])
def test_zero_is_refused_by_default(value):
    assert refusal(value) == ("invalid_amount", "amount")


@pytest.mark.parametrize("value", ["0", "0.0000", 0, Decimal("0"), "-0"])
def test_zero_is_accepted_with_allow_zero(value):
    assert parse_amount(value, allow_zero=True) == 0


def test_the_message_says_more_than_zero_or_zero_or_more():
    with pytest.raises(ValidationFailed) as err:
        parse_amount("0")
    assert "more than zero" in err.value.message
    with pytest.raises(ValidationFailed) as err:
        parse_amount("-1", allow_zero=True)
    assert "zero or more" in err.value.message


@pytest.mark.parametrize("value", ["0.00001", "1.23456", Decimal("0.00005"), "999999999.99991"])
def test_more_than_four_places_is_refused(value):
    assert refusal(value) == ("too_many_decimal_places", "amount")


def test_a_thirty_digit_value_is_not_rounded_into_acceptance():
    """Decimal arithmetic keeps 28 significant digits: 1 + 10**-29 computed as a product or sum would come
    out as 1 exactly. The comparison must be exact, so this is refused."""
    value = "1.00000000000000000000000000001"
    assert len(value.replace(".", "")) == 30
    assert refusal(value) == ("too_many_decimal_places", "amount")
    assert refusal("0.000000000000000000000000000001") == ("too_many_decimal_places", "amount")
    assert refusal("123456789.000000000000000000001") == ("too_many_decimal_places", "amount")


@pytest.mark.parametrize("value", ["1000000000.0001", "1000000001", 10 ** 30, Decimal("1E+30")])
def test_above_the_maximum_is_too_large(value):
    assert refusal(value) == ("amount_too_large", "amount")


@pytest.mark.parametrize("value", ["1e3", "1E+10", "1_0.5", "１２", "+1", ".5", "5.", "1.2.3", "0x10", "1 000"])
def test_text_must_be_plain_digits(value):
    """Decimal() would take most of these; an amount written as text is digits with an optional point."""
    assert refusal(value) == ("invalid_amount", "amount")


def test_a_json_number_in_exponent_form_is_exact():
    """The gateway reads JSON numbers as Decimal: 1e3 arrives as Decimal("1E+3"), a plain 1000."""
    assert parse_amount(Decimal("1E+3")) == 1000 * UNITS_PER_CREDIT


def test_the_field_name_is_reported():
    assert refusal("x", field="monthly_limit") == ("invalid_amount", "monthly_limit")
    assert refusal(None, field="monthly_limit") == ("amount_required", "monthly_limit")
    assert refusal("1.00001", field="monthly_limit") == ("too_many_decimal_places", "monthly_limit")


# ---- format_amount -----------------------------------------------------------------------------------
@pytest.mark.parametrize("units, text", [
    (0, "0.0000"),
    (1, "0.0001"),
    (10000, "1.0000"),
    (125000, "12.5000"),
    (12345678, "1234.5678"),
    (10000000000000, "1000000000.0000"),
    (-1, "-0.0001"),
    (-12345678, "-1234.5678"),
    (-10000, "-1.0000"),
])
def test_format_amount(units, text):
    assert format_amount(units) == text


def test_format_amount_of_none_stays_none():
    assert format_amount(None) is None


@pytest.mark.parametrize("text", ["0.0001", "1.0000", "12.5000", "999999999.9999", "1000000000.0000"])
def test_format_and_parse_round_trip(text):
    assert format_amount(parse_amount(text)) == text
