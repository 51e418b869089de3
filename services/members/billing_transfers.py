"""Billing transfers (product rules §4): Billing is never granted; an Owner who holds it offers it to another
member, who accepts (taking it over) or declines; the initiator may cancel. At most one transfer is
pending per organization. An accepted transfer's event carries both members' new membership states.

pending -> accepted | declined | cancelled; each move is one change event. A recipient who leaves or is
removed ends the offer too (memberships.remove_member), which is why `end_transfer` lives in member_rules.

The functions that change transfers receive the command's open write transaction (`session`); the
pipeline (common.commands) checked that the caller is a member, and runs the command again when its commit
loses a race on a unique key (a concurrent start taking the one pending slot: then this one answers 409).
"""
import uuid
from datetime import datetime

from sqlalchemy import or_, select

from common.errors import Conflict, Forbidden, NotFound, ValidationFailed, member_not_found
from common.paging import Keyset, asc, desc, keyset_page
from common.timeutil import utcnow
from services.members.events import BILLING_TRANSFER_STARTED, emit
from services.members.member_rules import (
    BILLING,
    OWNER,
    caller_membership,
    check_status_filter,
    end_transfer,
    find_member,
    lock_organization,
)
from services.members.membership_states import carried
from services.members.memberships import set_roles
from services.members.models import PENDING, BillingTransfer
from services.members.schemas import billing_transfer_schema

TRANSFER_STATUSES = ("pending", "accepted", "declined", "cancelled")
TRANSFERS = Keyset("billing_transfers", desc("created_at", BillingTransfer.created_at, datetime),
                   asc("id", BillingTransfer.id))           # newest first


def start_billing_transfer(session, identity, organization_id, to_user_id, now=None):
    """Offer Billing to another member; only an Owner who holds Billing (their roles read under the lock);
    one pending per organization."""
    now = now or utcnow()
    if not isinstance(to_user_id, str) or not to_user_id.strip():
        raise ValidationFailed("to_user_id is required.", code="to_user_id_required", field="to_user_id")
    lock_organization(session, organization_id)
    caller = caller_membership(session, organization_id, identity)
    if not {OWNER, BILLING} <= set(caller.roles):
        raise Forbidden("Only an Owner who holds Billing can hand Billing over.", code="not_billing_owner")
    if to_user_id == identity.id:
        raise ValidationFailed("You already hold Billing; choose another member.",
                               code="already_billing_holder", field="to_user_id")
    if find_member(session, organization_id, to_user_id) is None:
        raise member_not_found(field="to_user_id")
    _check_no_pending_transfer(session, organization_id)
    transfer = BillingTransfer(id=str(uuid.uuid4()), organization_id=organization_id, from_user_id=identity.id,
                               to_user_id=to_user_id, status=PENDING, created_at=now)
    session.add(transfer)
    session.flush()
    emit(session, BILLING_TRANSFER_STARTED, "create", organization_id, identity, "billing_transfer",
         transfer.id, after={"from_user_id": identity.id, "to_user_id": to_user_id, "status": PENDING})
    return billing_transfer_schema.dump(transfer)


def accept_billing_transfer(session, identity, organization_id, transfer_id, now=None):
    """The recipient takes Billing over: it leaves the initiator and joins the recipient's roles."""
    now = now or utcnow()
    transfer = _pending_transfer(session, identity, organization_id, transfer_id, "recipient")
    giver = find_member(session, organization_id, transfer.from_user_id)
    receiver = find_member(session, organization_id, identity.id)
    states = (set_roles(session, giver, set(giver.roles) - {BILLING}),
              set_roles(session, receiver, set(receiver.roles) | {BILLING}))
    return end_transfer(session, transfer, "accepted", identity, now,
                        before={"billing_holder": giver.user_id}, after={"billing_holder": receiver.user_id},
                        state=carried(*states))


def decline_billing_transfer(session, identity, organization_id, transfer_id, now=None):
    now = now or utcnow()
    transfer = _pending_transfer(session, identity, organization_id, transfer_id, "recipient")
    return end_transfer(session, transfer, "declined", identity, now)


def cancel_billing_transfer(session, identity, organization_id, transfer_id, now=None):
    now = now or utcnow()
    transfer = _pending_transfer(session, identity, organization_id, transfer_id, "initiator")
    return end_transfer(session, transfer, "cancelled", identity, now)


def list_billing_transfers(store, identity, organization_id, status=None, cursor=None, limit=None):
    """Owners and the Billing holder see every transfer; other members the ones they are party to."""
    status = check_status_filter(status, TRANSFER_STATUSES)
    with store.read() as session:
        caller = caller_membership(session, organization_id, identity)
        query = select(BillingTransfer).where(BillingTransfer.organization_id == organization_id)
        if not set(caller.roles) & {OWNER, BILLING}:
            query = query.where(or_(BillingTransfer.from_user_id == identity.id,
                                    BillingTransfer.to_user_id == identity.id))
        if status:
            query = query.where(BillingTransfer.status == status)
        return keyset_page(session, query, TRANSFERS, cursor, limit, dump=billing_transfer_schema.dump)


def _check_no_pending_transfer(session, organization_id):
    pending = session.scalar(select(BillingTransfer).where(
        BillingTransfer.organization_id == organization_id, BillingTransfer.status == PENDING))
    if pending is not None:
        raise Conflict("A billing transfer is already pending in this organization.",
                       code="billing_transfer_pending", details={"billing_transfer_id": pending.id})


def _pending_transfer(session, identity, organization_id, transfer_id, party):
    """The pending transfer, in the locked organization, that the caller may answer as `party`
    ("recipient" to accept or decline, "initiator" to cancel; the pipeline checked they are a member)."""
    lock_organization(session, organization_id)
    transfer = session.get(BillingTransfer, transfer_id) if isinstance(transfer_id, str) else None
    if transfer is None or transfer.organization_id != organization_id:
        raise NotFound("There is no such billing transfer in this organization.",
                       code="billing_transfer_not_found", field="transfer_id")
    if party == "recipient" and transfer.to_user_id != identity.id:
        raise Forbidden("Only the member this transfer is addressed to can accept or decline it.",
                        code="not_transfer_recipient")
    if party == "initiator" and transfer.from_user_id != identity.id:
        raise Forbidden("Only the member who started this transfer can cancel it.", code="not_transfer_initiator")
    if transfer.status != PENDING:
        raise Conflict(f"This billing transfer is no longer pending: it was {transfer.status}.",
                       code="billing_transfer_not_pending", details={"status": transfer.status})
    return transfer
