"""Payment methods (SPEC §11): cards kept at the payment provider for an organization, one provider customer
per organization. Adding one attaches it at the provider first (outside any transaction: the command is
phased), then records its brand, last 4 digits and expiry; the first card added is the default. Removing
one detaches it at the provider after the record is gone from the list. Adding and removing are audited
with the brand and last 4 digits only."""
import uuid
from datetime import datetime

from sqlalchemy import select

from common.errors import NotFound, ValidationFailed
from common.paging import Keyset, asc, keyset_page
from common.timeutil import utcnow
from services.billing.events import (
    PAYMENT_METHOD_ADDED,
    PAYMENT_METHOD_DEFAULT_CHANGED,
    PAYMENT_METHOD_REMOVED,
    emit,
)
from services.billing.models import Customer, PaymentMethod
from services.billing.schemas import payment_method_dict

MAX_PAYMENT_METHODS = 20            # per organization
OLDEST_FIRST = Keyset("payment_methods", asc("created_at", PaymentMethod.created_at, datetime),
                      asc("id", PaymentMethod.id))


def payment_method_not_found():
    return NotFound("No such payment method in this organization.", code="payment_method_not_found",
                    field="payment_method_id")


def customer_id(uow, provider, organization_id):
    """The organization's customer at the provider, made the first time (a race between two first cards
    makes two at the provider; the first saved is kept, the other is never used)."""
    with uow.read() as session:
        customer = session.get(Customer, organization_id)
        if customer is not None:
            return customer.provider_customer_id
    made = provider.create_customer(organization_id)
    with uow.write() as session:
        customer = session.get(Customer, organization_id)
        if customer is None:
            session.add(Customer(organization_id=organization_id, provider_customer_id=made, created_at=utcnow()))
            return made
        return customer.provider_customer_id


def add(uow, provider, identity, organization_id, provider_payment_method_id):
    """Attach the card at the provider and keep it (the default if it is the first)."""
    with uow.read() as session:
        if len(listed(session, organization_id)) >= MAX_PAYMENT_METHODS:
            raise ValidationFailed(f"An organization keeps at most {MAX_PAYMENT_METHODS} payment methods; remove "
                                   "one first.", code="too_many_payment_methods", field="provider_payment_method_id")
    card = provider.attach_card(customer_id(uow, provider, organization_id), provider_payment_method_id)
    with uow.write() as session:
        existing = session.scalar(select(PaymentMethod).where(
            PaymentMethod.provider_payment_method_id == card.provider_id))
        if existing is not None and existing.removed_at is None:
            if existing.organization_id != organization_id:
                raise payment_method_not_found()
            return payment_method_dict(existing)       # added twice: the same card
        method = PaymentMethod(id=str(uuid.uuid4()), organization_id=organization_id,
                               provider_payment_method_id=card.provider_id, brand=card.brand, last4=card.last4,
                               exp_month=card.exp_month, exp_year=card.exp_year,
                               is_default=not listed(session, organization_id), created_by=identity.id,
                               created_at=utcnow())
        if existing is not None:            # the same card again after its removal: a new record
            existing.provider_payment_method_id = f"{existing.provider_payment_method_id}#removed-{existing.id}"
            session.flush()
        session.add(method)
        session.flush()
        emit(session, PAYMENT_METHOD_ADDED, "create", organization_id, identity, "payment_method", method.id,
             after={"brand": method.brand, "last4": method.last4, "is_default": method.is_default})
        return payment_method_dict(method)


def listed(session, organization_id):
    return session.scalars(select(PaymentMethod).where(PaymentMethod.organization_id == organization_id,
                                                       PaymentMethod.removed_at.is_(None))).all()


def page(store, organization_id, cursor=None, limit=None):
    with store.read() as session:
        query = select(PaymentMethod).where(PaymentMethod.organization_id == organization_id,
                                            PaymentMethod.removed_at.is_(None))
        return keyset_page(session, query, OLDEST_FIRST, cursor, limit, dump=payment_method_dict)


def live(session, organization_id, payment_method_id, for_update=False):
    method = (session.get(PaymentMethod, payment_method_id, with_for_update=for_update)
              if isinstance(payment_method_id, str) else None)
    if method is None or method.organization_id != organization_id or method.removed_at is not None:
        raise payment_method_not_found()
    return method


def default_of(session, organization_id):
    return session.scalar(select(PaymentMethod).where(PaymentMethod.organization_id == organization_id,
                                                      PaymentMethod.removed_at.is_(None),
                                                      PaymentMethod.is_default.is_(True)))


def set_default(session, identity, organization_id, payment_method_id):
    method = live(session, organization_id, payment_method_id, for_update=True)
    if method.is_default:
        return payment_method_dict(method)
    before = default_of(session, organization_id)
    if before is not None:
        before.is_default = False
    method.is_default = True
    emit(session, PAYMENT_METHOD_DEFAULT_CHANGED, "update", organization_id, identity, "payment_method", method.id,
         before={"is_default": False}, after={"is_default": True, "brand": method.brand, "last4": method.last4})
    return payment_method_dict(method)


def remove(uow, provider, identity, organization_id, payment_method_id):
    """Take the card off the list (the oldest other card becomes the default), then detach it at the
    provider; the record stays for the transactions that name it."""
    with uow.write() as session:
        method = live(session, organization_id, payment_method_id, for_update=True)
        method.removed_at = utcnow()
        if method.is_default:
            method.is_default = False
            others = sorted(listed(session, organization_id), key=lambda m: (m.created_at, m.id))
            if others:
                others[0].is_default = True
        emit(session, PAYMENT_METHOD_REMOVED, "delete", organization_id, identity, "payment_method", method.id,
             before={"brand": method.brand, "last4": method.last4})
        provider_id = method.provider_payment_method_id
    provider.detach_card(provider_id)       # after the commit: a failure leaves a card nobody can charge here
    return {"id": payment_method_id, "removed": True}
