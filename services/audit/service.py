"""Nameko entrypoints of the audit service: thin; storing events (and the memberships they carry) is in
reactions.py, the trail's storage and queries in trail.py. Who may read a trail is decided on the read
model of memberships (common.readmodels), not by asking members."""

from common.auth import Auth
from common.batch_consume import consume_batch
from common.db import Database
from common.events import AUDIT_QUEUE, change_event_or_none
from common.heap import FrozenStartupHeap
from common.membership_facts import MembershipFacts
from common.permissions import Action
from common.readmodels import ReadModelFill
from common.rpc import rpc, service_proxy
from services.audit import reactions, trail
from services.audit.models import READ_MODELS


class AuditService:
    name = "audit"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database()
    members = service_proxy("members")      # only to confirm a refusal (common.readmodels.Memberships)
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)

    @rpc
    def ping(self):
        self.fill.check()               # degraded until the read model was filled from members
        return "pong"

    # Events come in batches (common.batch_consume), acknowledged only after the batch's entries (and the
    # states they carry) are committed; on an error (database down) the batch goes back to the queue. A
    # message that is not a change event is logged and dropped: retrying cannot help.
    @consume_batch(AUDIT_QUEUE, requeue_on_error=True)
    def on_change_events(self, messages):
        events = [event for event in map(change_event_or_none, messages) if event is not None]
        if events:
            reactions.handle_change_events(self.db, events)

    @rpc
    def list_entries(self, organization_id, filters=None, cursor=None, limit=None):
        """The organization's audit trail (Owner/Admin only)."""
        identity = self.auth.require()
        self.memberships.authorize(identity, organization_id, Action.VIEW_AUDIT, key_scope="audit:read")
        return trail.query_entries(self.db, organization_id, filters, cursor, limit)

    @rpc
    def list_agent_entries(self, organization_id, agent_id, filters=None, cursor=None, limit=None):
        """One agent's trail in the organization, a row per changed field (Owner/Admin only)."""
        identity = self.auth.require()
        self.memberships.authorize(identity, organization_id, Action.VIEW_AUDIT, key_scope="audit:read")
        return trail.query_agent_trail(self.db, organization_id, agent_id, filters, cursor, limit)
