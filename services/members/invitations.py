"""Invitations (product rules §3): an Owner or Admin invites an email address with preset roles and agents;
the person signed in with that address accepts (joining the organization) or rejects; the inviter
resends or revokes; a periodic job records the expiry of those left pending past their date.

pending -> accepted | rejected | revoked | expired; each move is one change event.

The functions that change invitations receive the command's open write transaction (`session`) and
values its declared contract validated (common.commands; the invitation's address is canonical); the
pipeline checked the caller's right, replays an Idempotency-Key's answer and commits. The email an
invitation carries is sent by the service once the transaction committed.
"""
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from common.auth import SYSTEM_ACTOR
from common.errors import Conflict, Forbidden, NotFound
from common.paging import Keyset, asc, desc, keyset_page
from common.permissions import sort_roles
from common.timeutil import as_utc, iso, utcnow
from services.members.events import INVITATION_CREATED, INVITATION_ENDED, INVITATION_RESENT, emit
from services.members.member_rules import (
    caller_membership,
    check_billing_not_granted,
    check_grant,
    check_query_text,
    check_status_filter,
    email_like_pattern,
    find_member,
    lock_organization,
    parse_roles,
)
from services.members.membership_states import carried, changed_state
from services.members.models import PENDING, Invitation, MemberRole, Membership, User
from services.members.schemas import invitation_schema
from services.members.users import caller_email

INVITATION_TTL = timedelta(days=7)
RESEND_AFTER = timedelta(minutes=10)
INVITATION_STATUSES = ("pending", "accepted", "rejected", "revoked", "expired")


# ---- inviting ----------------------------------------------------------------------------------------
def distinct_agent_ids(agent_ids):
    """The agents to assign (as the contract loaded them), each once, in the order given; none for None."""
    return list(dict.fromkeys(agent_ids or []))


def invite(session, identity, organization, email, roles, agent_ids=None, now=None):
    """Invite a canonical email address (the pipeline checked the caller may invite; what roles they may
    grant is decided here from their roles). `organization` is {"id", "name", "type"} as the read model
    of organizations describes it (organization_facts.organization_profile); `agent_ids` are agents of
    it (the entrypoint checked them with organization_facts.check_agent_ids, outside this transaction)."""
    now = now or utcnow()
    wanted, agent_ids = parse_roles(roles), distinct_agent_ids(agent_ids)
    check_billing_not_granted(wanted, set())
    if organization["type"] == "individual":
        raise Conflict("An Individual organization cannot receive invitations.", code="individual_organization")
    organization_id = organization["id"]
    # A race lost to another admin inviting this email ends in _check_no_pending_invitation's 409.
    caller = caller_membership(session, organization_id, identity)
    check_grant(set(caller.roles), set(), wanted, False)
    if session.scalar(select(func.count()).select_from(Membership).join(User, User.id == Membership.user_id)
                      .where(Membership.organization_id == organization_id, User.email == email)):
        raise Conflict(f"{email} is already a member of this organization.", code="already_member", field="email")
    _expire_due(session, now, Invitation.organization_id == organization_id, Invitation.email == email)
    _check_no_pending_invitation(session, organization_id, email)
    invitation = Invitation(
        id=str(uuid.uuid4()), organization_id=organization_id, organization_name=organization["name"],
        email=email, roles=sort_roles(wanted), agent_ids=agent_ids, status=PENDING,
        invited_by=identity.id, invited_by_email=identity.email, send_count=1, created_at=now,
        last_sent_at=now, expires_at=now + INVITATION_TTL)
    session.add(invitation)
    session.flush()
    result = invitation_dict(invitation, now)
    emit(session, INVITATION_CREATED, "create", organization_id, identity, "invitation", invitation.id,
         after={"email": email, "roles": result["roles"], "agent_ids": agent_ids,
                "status": PENDING, "expires_at": result["expires_at"]})
    return result


def _check_no_pending_invitation(session, organization_id, email):
    pending = session.scalar(select(Invitation).where(
        Invitation.organization_id == organization_id, Invitation.email == email, Invitation.status == PENDING))
    if pending is not None:
        raise Conflict(f"{email} already has a pending invitation to this organization; resend it instead.",
                       code="invitation_pending", field="email", details={"invitation_id": pending.id})


def invitation_email(invitation, app_url):
    """Subject and body of the email that carries an invitation: a link a person opens (the console's page
    of the invitation: the organization, the roles, Accept and Decline once signed in), and the API call
    for a program."""
    base = app_url.rstrip("/")
    page = f"{base}/console/#/invitations/{invitation['id']}"
    subject = f"You are invited to {invitation['organization_name']}"
    body = (f"{invitation['invited_by_email']} invited you to join {invitation['organization_name']} as "
            f"{', '.join(invitation['roles'])}.\n\n"
            f"Open the invitation to accept or decline it (sign in as {invitation['email']}):\n{page}\n\n"
            f"The invitation expires at {invitation['expires_at']}.\n"
            f"(With the API: POST {base}/v1/invitations/{invitation['id']}/accept)\n")
    return subject, body


# ---- the inviter: resend, revoke ---------------------------------------------------------------------
def resend_invitation(session, identity, organization_id, invitation_id, now=None):
    """Send again and renew the expiry (Owner/Admin); only 10 minutes or more after the last send."""
    now = now or utcnow()
    invitation = _pending_invitation_to_manage(session, organization_id, invitation_id, now)
    retry_at = as_utc(invitation.last_sent_at) + RESEND_AFTER
    if now < retry_at:
        raise Conflict(f"This invitation was last sent at {iso(invitation.last_sent_at)}; it can be resent "
                       f"from {iso(retry_at)} (10 minutes after the last send).", code="resend_too_early",
                       details={"retry_at": iso(retry_at), "last_sent_at": iso(invitation.last_sent_at)})
    before = {"last_sent_at": iso(invitation.last_sent_at), "expires_at": iso(invitation.expires_at)}
    invitation.last_sent_at, invitation.expires_at = now, now + INVITATION_TTL
    invitation.send_count += 1
    emit(session, INVITATION_RESENT, "update", organization_id, identity, "invitation", invitation.id,
         before=before, after={"last_sent_at": iso(now), "expires_at": iso(invitation.expires_at)})
    return invitation_dict(invitation, now)


def revoke_invitation(session, identity, organization_id, invitation_id, now=None):
    now = now or utcnow()
    invitation = _pending_invitation_to_manage(session, organization_id, invitation_id, now)
    return _end_invitation(session, invitation, "revoked", identity, now)


def _pending_invitation_to_manage(session, organization_id, invitation_id, now):
    """A pending invitation of the organization, locked, for an Owner/Admin to resend or revoke."""
    invitation = (session.get(Invitation, invitation_id, with_for_update=True)
                  if isinstance(invitation_id, str) else None)
    if invitation is None or invitation.organization_id != organization_id:
        raise NotFound("There is no such invitation in this organization.", code="invitation_not_found",
                       field="invitation_id")
    _check_pending(invitation, now)
    return invitation


# ---- the invitee: accept, reject ---------------------------------------------------------------------
def accept_invitation(session, identity, invitation_id, now=None):
    """Join the organization with the invitation's roles (its agent list travels in the event)."""
    now = now or utcnow()
    invitation = _addressed_invitation(session, identity, invitation_id)
    _check_pending(invitation, now)
    organization_id = invitation.organization_id
    lock_organization(session, organization_id)
    if find_member(session, organization_id, identity.id) is not None:
        raise Conflict("You are already a member of this organization.", code="already_member")
    membership = Membership(organization_id=organization_id, user_id=identity.id, joined_at=now)
    membership.role_rows = [MemberRole(organization_id=organization_id, user_id=identity.id, role=r)
                            for r in invitation.roles]
    session.add(membership)
    invitation.accepted_by = identity.id
    return _end_invitation(session, invitation, "accepted", identity, now,
                           state=carried(changed_state(session, membership)), user_id=identity.id,
                           roles=invitation.roles, agent_ids=invitation.agent_ids)


def reject_invitation(session, identity, invitation_id, now=None):
    now = now or utcnow()
    invitation = _addressed_invitation(session, identity, invitation_id)
    _check_pending(invitation, now)
    return _end_invitation(session, invitation, "rejected", identity, now)


def _addressed_invitation(session, identity, invitation_id):
    """An invitation the caller may answer: NotFound if unknown, Forbidden if sent to another email."""
    invitation = (session.get(Invitation, invitation_id, with_for_update=True)
                  if isinstance(invitation_id, str) else None)
    if invitation is None:
        raise NotFound("There is no such invitation.", code="invitation_not_found", field="invitation_id")
    if invitation.email != caller_email(identity):
        raise Forbidden("This invitation was sent to another email address; sign in with that address to "
                        "answer it.", code="invitation_not_for_you")
    return invitation


# ---- status and expiry -------------------------------------------------------------------------------
def effective_status(invitation, now):
    """A pending invitation past its expiry is expired, even before the job has recorded it."""
    if invitation.status == PENDING and as_utc(invitation.expires_at) <= now:
        return "expired"
    return invitation.status


def _check_pending(invitation, now):
    status = effective_status(invitation, now)
    if status == "expired":
        raise Conflict(f"This invitation expired at {iso(invitation.expires_at)}; send a new one.",
                       code="invitation_expired", details={"status": status})
    if status != PENDING:
        raise Conflict(f"This invitation is no longer pending: it was {status}.", code="invitation_not_pending",
                       details={"status": status})


def _end_invitation(session, invitation, status, actor, now, state=None, **after):
    """Move a pending invitation (callers have checked it is) to its final status, audited (`state`: the
    membership an accepted invitation made)."""
    invitation.status, invitation.ended_at = status, now
    emit(session, INVITATION_ENDED[status], "update", invitation.organization_id, actor, "invitation",
         invitation.id, before={"status": PENDING}, after=dict({"status": status}, **after), state=state)
    return invitation_dict(invitation, now)


def expire_due_invitations(store, now=None):
    """The periodic job: record the expiry of every pending invitation past its date (actor `system`)."""
    now = now or utcnow()
    with store.write() as session:
        return _expire_due(session, now)


def _expire_due(session, now, *conditions, batch=500):
    query = (select(Invitation).where(Invitation.status == PENDING, Invitation.expires_at <= now, *conditions)
             .order_by(Invitation.expires_at).limit(batch))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)   # replicas running the job split the work
    invitations = session.scalars(query).all()
    for invitation in invitations:
        _end_invitation(session, invitation, "expired", SYSTEM_ACTOR, now)
    return len(invitations)


# ---- lists -------------------------------------------------------------------------------------------
def list_invitations(store, identity, organization_id, status=None, q=None, cursor=None, limit=None, now=None):
    """The organization's invitations, newest first (Owner/Admin): filter by status, search by email."""
    now = now or utcnow()
    status, q = check_status_filter(status, INVITATION_STATUSES), check_query_text(q)
    with store.read() as session:
        query = select(Invitation).where(Invitation.organization_id == organization_id)
        if q:
            query = query.where(Invitation.email.like(email_like_pattern(q), escape="\\"))
        return _page_of_invitations(session, query, "invitations", status, cursor, limit, now)


def my_invitations(store, identity, status=None, cursor=None, limit=None, now=None):
    """Invitations addressed to the caller's email, newest first."""
    now = now or utcnow()
    status = check_status_filter(status, INVITATION_STATUSES)
    with store.read() as session:
        query = select(Invitation).where(Invitation.email == caller_email(identity))
        return _page_of_invitations(session, query, "my_invitations", status, cursor, limit, now)


def _page_of_invitations(session, query, name, status, cursor, limit, now):
    """One page, newest first, of the invitations `query` selects that have `status` (as of `now`)."""
    if status:
        query = query.where(_status_condition(status, now))
    newest_first = Keyset(name, desc("created_at", Invitation.created_at, datetime), asc("id", Invitation.id))
    return keyset_page(session, query, newest_first, cursor, limit, dump=lambda row: invitation_dict(row, now))


def _status_condition(status, now):
    if status == PENDING:
        return (Invitation.status == PENDING) & (Invitation.expires_at > now)
    if status == "expired":
        return or_(Invitation.status == "expired",
                   (Invitation.status == PENDING) & (Invitation.expires_at <= now))
    return Invitation.status == status


def invitation_dict(invitation, now):
    return dict(invitation_schema.dump(invitation), status=effective_status(invitation, now))
