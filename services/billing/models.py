"""Tables of the billing service: each organization's customer at the payment provider, its payment
methods (the provider's ids, brand, last 4 digits and expiry: never a card number), its transactions (one
per payment attempt), idempotent requests, handled requests, processed events, the outbox, and the read
model of memberships the pipeline decides who may do what on (common.readmodels).

Amounts in USD are whole cents; credit is in units (ten-thousandths of a credit, common.money), as in credits.
"""
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.handled_requests import HandledRequestMixin
from common.idempotency import IdempotencyMixin
from common.inbox import ProcessedEventMixin
from common.outbox import OutboxMixin
from common.readmodels import MembershipFactMixin, ReadModelFilledMixin, ReadModels, RetiredOrganizationMixin


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """The organization at the payment provider: made with its first payment method, one per organization."""
    __tablename__ = "customers"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at = mapped_column(DateTime(timezone=True), nullable=False)


class PaymentMethod(Base):
    """A card kept at the provider for the organization. `removed_at`: detached (kept for the transactions
    that name it)."""
    __tablename__ = "payment_methods"
    __table_args__ = (Index("ix_payment_methods_listed", "organization_id", "removed_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    provider_payment_method_id: Mapped[str] = mapped_column(String(255), unique=True)
    brand: Mapped[str] = mapped_column(String(32))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    removed_at = mapped_column(DateTime(timezone=True), nullable=True)


class Transaction(Base):
    """One payment attempt (SPEC §11): `pending` until the provider's answer, webhook or the reconciliation
    settles it as `success` (its credit granted by credits, keyed by this id), `failed` or `cancelled`."""
    __tablename__ = "transactions"
    # One automatic top-up pending at a time per organization: the unique index, not a look before the
    # insert, is what keeps twenty spends crossing the threshold together to one top-up.
    __table_args__ = (Index("ix_transactions_listed", "organization_id", "created_at", "id"),
                      Index("ix_transactions_pending", "status", "created_at"),
                      Index("uq_transactions_one_pending_topup", "organization_id", unique=True,
                            sqlite_where=text("type = 'auto_topup' AND status = 'pending'"),
                            postgresql_where=text("type = 'auto_topup' AND status = 'pending'")))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(16))           # manual_purchase | auto_topup | subscription | enterprise
    status: Mapped[str] = mapped_column(String(16))         # pending | success | failed | cancelled
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(BigInteger)        # units
    payment_method_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    payment_method_brand: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payment_method_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    provider_payment_id: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    next_action: Mapped[dict | None] = mapped_column(JSON, nullable=True)   # what the client needs (3-D Secure)
    created_by: Mapped[str] = mapped_column(String(128))
    created_by_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    completed_at = mapped_column(DateTime(timezone=True), nullable=True)


class AutoTopup(Base):
    """An organization's auto top-up settings (SPEC §11): when a spend takes the balance to or below
    `threshold`, one top-up is started, sized to bring it back to `target`, never past `monthly_cap_cents`
    in a calendar month; `consecutive_failures` reaching 3 switches it off."""
    __tablename__ = "auto_topups"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[int] = mapped_column(BigInteger)              # units
    target: Mapped[int] = mapped_column(BigInteger)                 # units
    monthly_cap_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    payment_method_id: Mapped[str | None] = mapped_column(String(36), nullable=True)   # None: the default card
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    cap_reached_period: Mapped[str | None] = mapped_column(String(7), nullable=True)   # "2026-12": told once
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


class IdempotentRequest(IdempotencyMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class OutboxEvent(OutboxMixin, Base):
    pass


class HandledRequest(HandledRequestMixin, Base):
    pass


class MembershipFact(MembershipFactMixin, Base):
    pass


class RetiredOrganization(RetiredOrganizationMixin, Base):
    pass


class ReadModelFilled(ReadModelFilledMixin, Base):
    pass


READ_MODELS = ReadModels(filled=ReadModelFilled, memberships=MembershipFact, retired=RetiredOrganization)
