"""Tables of the webhooks service: each organization's endpoints (with their signing secrets: they must be
read to sign, so they are stored as they are, and never answered after creation or rotation), the
deliveries (one per event and subscribed endpoint, stored when the event is acknowledged) and each
delivery's attempts (the delivery log); idempotent and handled requests, processed events (common.inbox),
the outbox, and the read model of memberships the pipeline decides who may do what on (common.readmodels).
"""
from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.handled_requests import HandledRequestMixin
from common.idempotency import IdempotencyMixin
from common.inbox import ProcessedEventMixin
from common.outbox import OutboxMixin
from common.readmodels import MembershipFactMixin, ReadModelFilledMixin, ReadModels, RetiredOrganizationMixin


class Base(DeclarativeBase):
    pass


class Endpoint(Base):
    """Where an organization wants its events: `event_types` names types or is ["*"]. `previous_secret`
    still signs until `previous_secret_expires_at` (a rotation's overlap). `failing_since`: the first
    failed attempt since the last success (5 days of it disable the endpoint)."""
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_organization", "organization_id", "deleted_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at = mapped_column(DateTime(timezone=True), nullable=True)
    failing_since = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)
    deleted_at = mapped_column(DateTime(timezone=True), nullable=True)


class Delivery(Base):
    """One event (or a test message) for one endpoint: pending until delivered, or failed after its last
    attempt (or when its endpoint was disabled or deleted). `next_attempt_at` orders the work; a row being
    sent has it moved ahead (the claim), so another process does not send it meanwhile."""
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
                      Index("uq_webhook_deliveries_event", "endpoint_id", "message_id", unique=True))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(36))
    organization_id: Mapped[str] = mapped_column(String(36))
    message_id: Mapped[str] = mapped_column(String(64))        # webhook-id: the event's id (or the test's)
    event_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)                     # the JSON sent, fixed when stored
    status: Mapped[str] = mapped_column(String(16))             # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    next_attempt_at = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at = mapped_column(DateTime(timezone=True), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Attempt(Base):
    """One try of a delivery: when, the receiver's status code (None: no answer), how long, what went wrong."""
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(36))
    attempted_at = mapped_column(DateTime(timezone=True), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)


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
