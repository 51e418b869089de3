"""Nameko entrypoints of the audit service: thin; storing events (and the memberships they carry) is in
reactions.py, the trail's storage and queries in trail.py. Who may read a trail is decided on the read
model of memberships (common.readmodels), not by asking members."""
from nameko.messaging import consume
from nameko.rpc import RpcProxy

from common.auth import Auth
from common.db import Database
from common.events import AUDIT_QUEUE, change_event_or_none
from common.membership_facts import MembershipFacts
from common.permissions import Action
from common.readmodels import ReadModelFill
from common.rpc import rpc
from services.audit import reactions, trail
from services.audit.models import READ_MODELS


class AuditService:
    name = "audit"

    auth = Auth()
    db = Database()
    members = RpcProxy("members")      # only to confirm a refusal (common.readmodels.Memberships)
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)

    @rpc
    def ping(self):
        self.fill.check()               # degraded until the read model was filled from members
        return "pong"

    # Acknowledged only after the entry (and the state it carries) is committed; on an error (database
    # down) the event goes back to the queue. A message that is not a change event is logged and dropped:
    # retrying cannot help.
    @consume(AUDIT_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event)

    @rpc
    def list_entries(self, organization_id, filters=None, cursor=None, limit=None):
        """The organization's audit trail (Owner/Admin only)."""
        identity = self.auth.require()
        self.memberships.authorize(identity, organization_id, Action.VIEW_AUDIT)
        return trail.query_entries(self.db, organization_id, filters, cursor, limit)

    @rpc
    def list_agent_entries(self, organization_id, agent_id, filters=None, cursor=None, limit=None):
        """One agent's trail in the organization, a row per changed field (Owner/Admin only)."""
        identity = self.auth.require()
        self.memberships.authorize(identity, organization_id, Action.VIEW_AUDIT)
        return trail.query_agent_trail(self.db, organization_id, agent_id, filters, cursor, limit)
