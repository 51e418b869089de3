"""Nameko entrypoints of the members service: thin; the rules live in users.py, memberships.py,
invitations.py and billing_transfers.py, the reaction to other services' events in reactions.py.

The members service owns memberships, so the pipeline (common.commands) checks permissions on its own
data (own_memberships.py); which budget group each member is in, and organizations' names, types and
liveness and agents' organizations come from its read models of credits' and orgs' facts
(common.readmodels, filled at start by `fill`; organization_facts.py). It calls no other service on a
request (orgs calls it, for an organization's founder: a call back would be a cycle).

Each command (common.commands) receives the open write transaction of its unit of work (common.unit_of_work)
and hands it, with the values its declared contract validated, to the domain functions, which decide; the
pipeline checked the caller's right, replays or stores an Idempotency-Key's answer, commits and retries a
lost unique-key race. An invitation's email is not sent by the request: its event comes back to the
reaction, which stores the email, and a job sends it and tries again on a failure (emails.py), so a
replay, which emits no event, sends none. `invite` alone is phased (`phases=True`): it may wait for its
read model to learn of an agent created a moment ago, between its reads and its write transaction.
"""
import logging

from nameko.timer import timer

from common.auth import SYSTEM_ACTOR, Auth
from common.commands import CREDENTIAL, MEMBER, OPTIONAL, PERSON, SERVICE, SYSTEM, command, query
from common.config import settings
from common.contracts.api_keys import ApiKeyInput
from common.contracts.invitations import InvitationInput
from common.db import Database
from common.errors import Conflict
from common.events import MEMBERS_QUEUE, change_event_or_none
from common.framework.consume import consume
from common.heap import FrozenStartupHeap
from common.mail import MailerProvider
from common.outbox import OutboxRelay
from common.permissions import Action
from common.readmodels import SNAPSHOT_PAGE, ReadModelFill
from services.members import (
    api_keys,
    billing_transfers,
    emails,
    invitations,
    membership_states,
    memberships,
    organization_facts,
    reactions,
    users,
)
from services.members.models import READ_MODELS, HandledRequest, IdempotentRequest, OutboxEvent
from services.members.own_memberships import OwnMemberships

log = logging.getLogger(__name__)

# How often the expiry job looks for invitations past their date, and the email job for emails due
# (tests shorten both).
INVITATION_SWEEP_SECONDS = settings().invitation_sweep_seconds
EMAIL_SEND_SECONDS = settings().email_send_seconds


class MembersService:
    name = "members"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database(handled_requests=HandledRequest, idempotent_requests=IdempotentRequest)
    outbox = OutboxRelay(OutboxEvent)
    mailer = MailerProvider()
    memberships = OwnMemberships()      # who may call what (common.commands), from members' own tables
    fill = ReadModelFill(READ_MODELS)

    @query(CREDENTIAL)
    def ping(self, caller):
        self.fill.check()       # degraded until the read model was first filled
        return "pong"

    # ---- users and founders (called by orgs) ---------------------------------------------------------
    @command(PERSON)
    def register_user(self, caller, session):
        """Create or refresh the caller's user record from their token's claims."""
        user, created = users.register_user(session, caller.identity)
        return {"user": user, "created": created}

    @command(PERSON)
    def add_founder(self, caller, session, organization_id, organization=None):
        """The caller becomes Owner and Billing of a brand-new organization (called by orgs, which hands
        over the organization's state: known here before anyone can invite into it)."""
        organization_facts.remember_organization(session, organization_id, organization)
        return memberships.add_founder(session, caller.identity, organization_id)

    # ---- membership states for other services' read models (common.readmodels) ----------------------
    @query(SYSTEM)
    def snapshot_memberships(self, caller, after=None, limit=SNAPSHOT_PAGE):
        """A page of every current membership's state, to fill or rebuild a read model (the system only)."""
        return membership_states.snapshot_memberships(self.db, after, limit)

    @query(SERVICE)
    def membership_states(self, caller, organization_id, user_ids):
        """The current states of those among `user_ids` who are members: a read model confirms a refusal
        with these before giving it. Told only to a member of the organization, or to the system."""
        caller_id = None if caller.identity.id == SYSTEM_ACTOR["id"] else caller.identity.id
        return membership_states.membership_states(self.db, organization_id, user_ids, caller_id)

    # ---- members -------------------------------------------------------------------------------------
    @query(Action.VIEW_MEMBERS)
    def list_members(self, caller, organization_id, q=None, role=None, sort=None, cursor=None, limit=None):
        return memberships.list_members(self.db, caller.identity, organization_id, q, role, sort, cursor,
                                        limit)

    @command(Action.EDIT_MEMBER_ROLES)
    def edit_roles(self, caller, session, organization_id, user_id, roles):
        return memberships.edit_roles(session, caller.identity, organization_id, user_id, roles)

    @command(MEMBER)
    def remove_member(self, caller, session, organization_id, user_id):
        """Remove a member, or leave when `user_id` is the caller."""
        try:
            return memberships.remove_member(session, caller.identity, organization_id, user_id)
        except Conflict as refusal:
            # The one member of an Individual organization holds Billing, so leaving it ends here; the
            # answer says why (there is no one to hand Billing to), from the read model of organizations.
            if refusal.code == memberships.BILLING_HOLDER_CANNOT_LEAVE \
                    and organization_facts.organization_profile(session, organization_id)["type"] == "individual":
                raise Conflict("You cannot leave your Individual organization: it is your own.",
                               code="individual_organization") from None
            raise

    # ---- invitations ---------------------------------------------------------------------------------
    @command(Action.MANAGE_INVITATIONS, idempotency=OPTIONAL, input=InvitationInput, phases=True)
    def invite(self, caller, uow, organization_id, email, roles, agent_ids=None, idempotency_key=None):
        """Invite an email address. Phased: an agent the read model does not know yet is waited for
        between the reads and the write transaction (never inside one: organization_facts.py)."""
        with uow.read() as session:
            replayed = uow.replay(session)
            if replayed is not None:
                return replayed         # its email was called for by the first one's event
            # The organization's type and name (404 if it was deleted), from the read model.
            organization = organization_facts.organization_profile(session, organization_id)
        agent_ids = invitations.distinct_agent_ids(agent_ids)
        if agent_ids:       # its agents (422 unknown_agent), from the read model
            organization_facts.check_agent_ids(self.db, organization_id, agent_ids)

        def create(session):
            return invitations.invite(session, caller.identity, organization, email, roles, agent_ids)
        return uow.run(create)      # replays an answer stored meanwhile under the key, else stores this one

    @command(Action.MANAGE_INVITATIONS)
    def resend_invitation(self, caller, session, organization_id, invitation_id):
        return invitations.resend_invitation(session, caller.identity, organization_id, invitation_id)

    @command(Action.MANAGE_INVITATIONS)
    def revoke_invitation(self, caller, session, organization_id, invitation_id):
        return invitations.revoke_invitation(session, caller.identity, organization_id, invitation_id)

    @query(Action.MANAGE_INVITATIONS)
    def list_invitations(self, caller, organization_id, status=None, q=None, cursor=None, limit=None):
        return invitations.list_invitations(self.db, caller.identity, organization_id, status, q, cursor,
                                            limit)

    @query(PERSON)
    def my_invitations(self, caller, status=None, cursor=None, limit=None):
        return invitations.my_invitations(self.db, caller.identity, status, cursor, limit)

    @command(PERSON)
    def accept_invitation(self, caller, session, invitation_id):
        return invitations.accept_invitation(session, caller.identity, invitation_id)

    @command(PERSON)
    def reject_invitation(self, caller, session, invitation_id):
        return invitations.reject_invitation(session, caller.identity, invitation_id)

    @timer(interval=INVITATION_SWEEP_SECONDS)
    def expire_invitations(self):
        expired = invitations.expire_due_invitations(self.db)
        if expired:
            log.info("expired %d invitation(s)", expired)

    @timer(interval=EMAIL_SEND_SECONDS)
    def send_due_emails(self):
        """The emails the reactions stored (emails.py), each sent outside any transaction, retried later
        when the mail server fails."""
        emails.send_due_emails(self.db, self.mailer)

    # ---- billing transfers ---------------------------------------------------------------------------
    @command(MEMBER)
    def start_billing_transfer(self, caller, session, organization_id, to_user_id):
        return billing_transfers.start_billing_transfer(session, caller.identity, organization_id, to_user_id)

    @command(MEMBER)
    def accept_billing_transfer(self, caller, session, organization_id, transfer_id):
        return billing_transfers.accept_billing_transfer(session, caller.identity, organization_id, transfer_id)

    @command(MEMBER)
    def decline_billing_transfer(self, caller, session, organization_id, transfer_id):
        return billing_transfers.decline_billing_transfer(session, caller.identity, organization_id, transfer_id)

    @command(MEMBER)
    def cancel_billing_transfer(self, caller, session, organization_id, transfer_id):
        return billing_transfers.cancel_billing_transfer(session, caller.identity, organization_id, transfer_id)

    @query(MEMBER)
    def list_billing_transfers(self, caller, organization_id, status=None, cursor=None, limit=None):
        return billing_transfers.list_billing_transfers(self.db, caller.identity, organization_id, status,
                                                        cursor, limit)

    # ---- API keys (Owner/Admin; SPEC §9) ------------------------------------------------------------
    @command(Action.MANAGE_API_KEYS, input=ApiKeyInput)
    def create_api_key(self, caller, session, organization_id, name, scopes, expires_at=None):
        """A new key; the answer's `key` is the secret, shown this once."""
        return api_keys.create_key(session, caller.identity, organization_id, name, scopes, expires_at,
                                   settings().api_key_hash_secret)

    @query(Action.MANAGE_API_KEYS)
    def list_api_keys(self, caller, organization_id, cursor=None, limit=None):
        return api_keys.list_keys(self.db, caller.identity, organization_id, cursor, limit)

    @command(Action.MANAGE_API_KEYS)
    def revoke_api_key(self, caller, session, organization_id, key_id):
        return api_keys.revoke_key(session, caller.identity, organization_id, key_id)

    @query(CREDENTIAL)
    def authenticate_api_key(self, caller, key):
        """The gateway's question about a key it does not keep: the key (its secret) is the credential, so
        no identity is asked for; the answer lets the gateway check the secret itself (api_keys.verifier_of:
        the keyed hash, never the secret)."""
        return api_keys.verifier_of(self.db, key, settings().api_key_hash_secret)

    # ---- events --------------------------------------------------------------------------------------
    # Acknowledged after the effects commit; an error (database down) requeues the event. A message
    # that is not a change event is logged and dropped (before, a malformed one was requeued forever).
    @consume(MEMBERS_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event)
