"""Nameko entrypoints of the members service: thin; the rules live in users.py, memberships.py,
invitations.py and billing_transfers.py, the reaction to other services' events in reactions.py.

The members service owns memberships, so it checks permissions on its own data
(memberships.caller_membership); it asks orgs only for an organization's type and name, and whether
its agents exist, when inviting.
"""
import logging

from nameko.messaging import consume
from nameko.timer import timer

from common.auth import SYSTEM_ACTOR, Auth
from common.config import settings
from common.db import Database
from common.errors import Conflict
from common.events import MEMBERS_QUEUE, change_event_or_none
from common.heap import FrozenStartupHeap
from common.mail import MailerProvider
from common.outbox import OutboxRelay
from common.readmodels import SNAPSHOT_PAGE
from common.rpc import call, rpc, service_proxy
from services.members import (
    api_keys,
    billing_transfers,
    invitations,
    membership_states,
    memberships,
    reactions,
    users,
)
from services.members.models import HandledRequest, OutboxEvent

log = logging.getLogger(__name__)

# How often the expiry job looks for invitations past their date (tests shorten it).
INVITATION_SWEEP_SECONDS = settings().invitation_sweep_seconds


class MembersService:
    name = "members"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database(handled_requests=HandledRequest)
    outbox = OutboxRelay(OutboxEvent)
    mailer = MailerProvider()
    orgs = service_proxy("orgs")

    @rpc
    def ping(self):
        return "pong"

    # ---- users and founders (called by orgs) ---------------------------------------------------------
    @rpc
    def register_user(self):
        """Create or refresh the caller's user record from their token's claims."""
        user, created = users.register_user(self.db, self.auth.require())
        return {"user": user, "created": created}

    @rpc
    def add_founder(self, organization_id):
        """The caller becomes Owner and Billing of a brand-new organization (called by orgs)."""
        return memberships.add_founder(self.db, self.auth.require(), organization_id)

    # ---- membership states for other services' read models (common.readmodels) ----------------------
    @rpc
    def snapshot_memberships(self, after=None, limit=SNAPSHOT_PAGE):
        """A page of every current membership's state, to fill or rebuild a read model (the system only)."""
        self.auth.require_system()
        return membership_states.snapshot_memberships(self.db, after, limit)

    @rpc
    def membership_states(self, organization_id, user_ids):
        """The current states of those among `user_ids` who are members: a read model confirms a refusal
        with these before giving it. Told only to a member of the organization, or to the system."""
        caller = self.auth.require()
        caller_id = None if caller.id == SYSTEM_ACTOR["id"] else caller.id
        return membership_states.membership_states(self.db, organization_id, user_ids, caller_id)

    # ---- members -------------------------------------------------------------------------------------
    @rpc
    def list_members(self, organization_id, q=None, role=None, sort=None, cursor=None, limit=None):
        return memberships.list_members(self.db, self.auth.require(), organization_id, q, role, sort, cursor,
                                        limit)

    @rpc
    def edit_roles(self, organization_id, user_id, roles):
        return memberships.edit_roles(self.db, self.auth.require(), organization_id, user_id, roles)

    @rpc
    def remove_member(self, organization_id, user_id):
        """Remove a member, or leave when `user_id` is the caller."""
        try:
            return memberships.remove_member(self.db, self.auth.require(), organization_id, user_id)
        except Conflict as refusal:
            # The one member of an Individual organization holds Billing, so leaving it ends here; only
            # orgs knows the organization's type, asked only now (never inside the write transaction),
            # so that the answer says why: there is no one to hand Billing to.
            if refusal.code == memberships.BILLING_HOLDER_CANNOT_LEAVE \
                    and call(self.orgs.organization_profile, organization_id)["type"] == "individual":
                raise Conflict("You cannot leave your Individual organization: it is your own.",
                               code="individual_organization") from None
            raise

    # ---- invitations ---------------------------------------------------------------------------------
    @rpc
    def invite(self, organization_id, email, roles, agent_ids=None, idempotency_key=None):
        identity = self.auth.require()
        # Membership and permission first (404 / 403 from our own data), then the organization's
        # type and name from orgs (404 if it was deleted a moment ago) and its agents (422 unknown_agent).
        invitations.check_may_invite(self.db, identity, organization_id)
        organization = call(self.orgs.organization_profile, organization_id)
        agent_ids = invitations.clean_agent_ids(agent_ids)
        if agent_ids:
            call(self.orgs.check_agent_ids, organization_id, agent_ids)
        invitation, created = invitations.invite(self.db, identity, organization, email, roles, agent_ids,
                                                 idempotency_key)
        if created:   # a replayed idempotency key sent its email the first time
            self._send(invitation)
        return invitation

    @rpc
    def resend_invitation(self, organization_id, invitation_id):
        invitation = invitations.resend_invitation(self.db, self.auth.require(), organization_id, invitation_id)
        self._send(invitation)
        return invitation

    @rpc
    def revoke_invitation(self, organization_id, invitation_id):
        return invitations.revoke_invitation(self.db, self.auth.require(), organization_id, invitation_id)

    @rpc
    def list_invitations(self, organization_id, status=None, q=None, cursor=None, limit=None):
        return invitations.list_invitations(self.db, self.auth.require(), organization_id, status, q, cursor,
                                            limit)

    @rpc
    def my_invitations(self, status=None, cursor=None, limit=None):
        return invitations.my_invitations(self.db, self.auth.require(), status, cursor, limit)

    @rpc
    def accept_invitation(self, invitation_id):
        return invitations.accept_invitation(self.db, self.auth.require(), invitation_id)

    @rpc
    def reject_invitation(self, invitation_id):
        return invitations.reject_invitation(self.db, self.auth.require(), invitation_id)

    @timer(interval=INVITATION_SWEEP_SECONDS)
    def expire_invitations(self):
        expired = invitations.expire_due_invitations(self.db)
        if expired:
            log.info("expired %d invitation(s)", expired)

    def _send(self, invitation):
        # After the commit, outside the transaction: a failed send is logged; the invitation stands
        # and can be resent.
        subject, body = invitations.invitation_email(invitation, settings().app_url)
        self.mailer.send(invitation["email"], subject, body)

    # ---- billing transfers ---------------------------------------------------------------------------
    @rpc
    def start_billing_transfer(self, organization_id, to_user_id):
        return billing_transfers.start_billing_transfer(self.db, self.auth.require(), organization_id, to_user_id)

    @rpc
    def accept_billing_transfer(self, organization_id, transfer_id):
        return billing_transfers.accept_billing_transfer(self.db, self.auth.require(), organization_id, transfer_id)

    @rpc
    def decline_billing_transfer(self, organization_id, transfer_id):
        return billing_transfers.decline_billing_transfer(self.db, self.auth.require(), organization_id,
                                                          transfer_id)

    @rpc
    def cancel_billing_transfer(self, organization_id, transfer_id):
        return billing_transfers.cancel_billing_transfer(self.db, self.auth.require(), organization_id, transfer_id)

    @rpc
    def list_billing_transfers(self, organization_id, status=None, cursor=None, limit=None):
        return billing_transfers.list_billing_transfers(self.db, self.auth.require(), organization_id, status,
                                                        cursor, limit)

    # ---- API keys (Owner/Admin; SPEC §9) ------------------------------------------------------------
    @rpc
    def create_api_key(self, organization_id, name, scopes, expires_at=None):
        """A new key; the answer's `key` is the secret, shown this once."""
        return api_keys.create_key(self.db, self.auth.require(), organization_id, name, scopes, expires_at,
                                   settings().api_key_hash_secret)

    @rpc
    def list_api_keys(self, organization_id, cursor=None, limit=None):
        return api_keys.list_keys(self.db, self.auth.require(), organization_id, cursor, limit)

    @rpc
    def revoke_api_key(self, organization_id, key_id):
        return api_keys.revoke_key(self.db, self.auth.require(), organization_id, key_id)

    @rpc
    def authenticate_api_key(self, key):
        """The gateway's check of a key it has not seen in the last minute: the key (its secret) is the
        credential, so no identity is asked for; the answer carries no secret or hash."""
        return api_keys.authenticate(self.db, key, settings().api_key_hash_secret)

    # ---- events --------------------------------------------------------------------------------------
    # Acknowledged after the effects commit; an error (database down) requeues the event. A message
    # that is not a change event is logged and dropped (before, a malformed one was requeued forever).
    @consume(MEMBERS_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event)
