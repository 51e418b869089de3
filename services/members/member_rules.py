"""The rules members' modules share (memberships.py, invitations.py, billing_transfers.py, api_keys.py):
the roles that may be granted and by whom, finding a member and the caller, the organization lock that
serializes membership changes, query and status filters, and ending a billing transfer.
"""
from sqlalchemy import select

from common.auth import folded_text, is_printable_text, is_valid_user_id
from common.authz import check_allowed, check_key_allowed
from common.errors import Forbidden, ValidationFailed, organization_not_found
from common.paging import SEARCH_MAX_LENGTH
from common.permissions import ROLE_ORDER, Role
from services.members.events import BILLING_TRANSFER_ENDED, emit
from services.members.models import PENDING, Membership
from services.members.schemas import billing_transfer_schema

OWNER, ADMIN, BUILDER, MEMBER, BILLING = (r.value for r in Role)
FOUNDER_ROLES = (OWNER, BILLING)
GRANTABLE_ROLES = (OWNER, ADMIN, BUILDER, MEMBER)   # Billing moves only by transfer
ADMIN_GRANTABLE_ROLES = {BUILDER, MEMBER}           # "ultimate ownership stays with Owners"


def find_member(session, organization_id, user_id):
    """The membership, or None (also for ids that cannot be one)."""
    if not (isinstance(organization_id, str) and is_valid_user_id(user_id)):
        return None
    return session.get(Membership, (organization_id, user_id))


def caller_membership(session, organization_id, identity, action=None):
    """The caller's membership; NotFound for non-members (ids cannot be probed), Forbidden when their
    roles do not allow `action`. An API key has no membership: nothing here is in its scopes."""
    if identity.is_key:
        check_key_allowed(identity, organization_id)
    membership = find_member(session, organization_id, identity.id)
    if membership is None:
        raise organization_not_found()
    if action is not None:
        check_allowed(membership.roles, action)
    return membership


def lock_organization(session, organization_id):
    """Serialize membership changes of one organization (PostgreSQL row locks; a no-op on SQLite,
    whose writers are serialized already). Always in one order, so two lockers cannot deadlock."""
    session.execute(select(Membership.user_id).where(Membership.organization_id == organization_id)
                    .order_by(Membership.user_id).with_for_update())


def parse_roles(roles):
    """The requested roles as a set; 422 for anything but a non-empty list of known role names."""
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ValidationFailed("roles must be a list of role names.", code="invalid_type", field="roles")
    wanted = set(roles)
    if not wanted:
        raise ValidationFailed("At least one role is required.", code="roles_required", field="roles")
    unknown = sorted(wanted - set(ROLE_ORDER))
    if unknown:
        raise ValidationFailed(f"Unknown role {unknown[0]!r}; roles are {', '.join(GRANTABLE_ROLES)}.",
                               code="unknown_role", field="roles")
    return wanted


def check_billing_not_granted(wanted, held):
    if BILLING in wanted and BILLING not in held:
        raise ValidationFailed("Billing cannot be granted; it moves only by a billing transfer.",
                               code="billing_by_transfer_only", field="roles")


def check_grant(caller_roles, before, after, target_is_caller):
    """Ownership rules (product rules §2): an Admin grants only Builder or Member and does not touch the roles
    of an Owner or another Admin; Owners may do anything (the last-Owner rule is checked apart)."""
    if OWNER in caller_roles:
        return
    if not target_is_caller and before & {OWNER, ADMIN}:
        raise Forbidden("Only an Owner can change or remove an Owner or an Admin.",
                        code="owner_or_admin_protected", field="user_id")
    if (after - before) - ADMIN_GRANTABLE_ROLES - {BILLING}:
        raise Forbidden("An Admin can grant only the Builder and Member roles.",
                        code="role_not_grantable", field="roles")


def like_pattern(text):
    """A case-insensitive LIKE pattern (escape character `\\`) that finds `text` anywhere."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def email_like_pattern(text):
    """like_pattern for a search among emails, which are stored in canonical form: `text` folded the same
    way, so "STRASSE" finds "straße@…" (stored "strasse@…")."""
    return like_pattern(folded_text(text))


def check_query_text(q, field="q"):
    if q in (None, ""):
        return None
    if not is_printable_text(q) or len(q) > SEARCH_MAX_LENGTH:
        raise ValidationFailed(f"{field} must be text of at most {SEARCH_MAX_LENGTH} printable characters.",
                               code="invalid_query", field=field)
    return q


def check_status_filter(status, allowed):
    if status in (None, ""):
        return None
    if status not in allowed:
        raise ValidationFailed(f"status must be one of {', '.join(allowed)}.", code="invalid_status", field="status")
    return status


def end_transfer(session, transfer, status, actor, now, before=None, after=None, state=None):
    """Move a pending billing transfer to its final status, audited (`state`: the memberships an
    accepted transfer changed). Here rather than in billing_transfers.py because leaving and removal
    end transfers too, and billing_transfers.py builds on this module (one direction of import)."""
    transfer.status, transfer.ended_at = status, now
    emit(session, BILLING_TRANSFER_ENDED[status], "update", transfer.organization_id, actor, "billing_transfer",
         transfer.id, before=dict({"status": PENDING}, **(before or {})),
         after=dict({"status": status}, **(after or {})), state=state)
    return billing_transfer_schema.dump(transfer)
