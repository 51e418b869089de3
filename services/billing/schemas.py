"""The billing service's answers: a payment method (never a card number: brand, last 4 digits, expiry) and
a transaction (SPEC §11)."""
from decimal import Decimal

from common.money import format_amount
from common.timeutil import iso


def usd(cents):
    """Whole cents as the API writes USD: "25.00"."""
    return f"{Decimal(cents) / 100:.2f}"


def payment_method_dict(method):
    return {"id": method.id, "organization_id": method.organization_id, "brand": method.brand,
            "last4": method.last4, "exp_month": method.exp_month, "exp_year": method.exp_year,
            "is_default": method.is_default, "created_by": method.created_by, "created_at": iso(method.created_at)}


def transaction_dict(transaction):
    card = ({"id": transaction.payment_method_id, "brand": transaction.payment_method_brand,
             "last4": transaction.payment_method_last4} if transaction.payment_method_id else None)
    answer = {"id": transaction.id, "organization_id": transaction.organization_id, "type": transaction.type,
              "status": transaction.status, "amount_usd": usd(transaction.amount_cents),
              "credits": format_amount(transaction.credits), "payment_method": card,
              "failure_code": transaction.failure_code, "failure_message": transaction.failure_message,
              "created_by": transaction.created_by, "created_at": iso(transaction.created_at),
              "completed_at": iso(transaction.completed_at) if transaction.completed_at else None,
              "next_action": transaction.next_action if transaction.status == "pending" else None}
    return answer
