"""Nameko entrypoints of the audit service: thin; storing events is in reactions.py, the trail's
storage and queries in trail.py."""
from nameko.messaging import consume
from nameko.rpc import RpcProxy

from common.auth import Auth
from common.authz import authorize
from common.db import Database
from common.events import AUDIT_QUEUE, change_event_or_none
from common.permissions import Action
from common.rpc import rpc
from services.audit import reactions, trail


class AuditService:
    name = "audit"

    auth = Auth()
    db = Database()
    members = RpcProxy("members")

    @rpc
    def ping(self):
        return "pong"

    # Acknowledged only after the entry is committed; on an error (database down) the event goes back
    # to the queue. A message that is not a change event is logged and dropped: retrying cannot help.
    @consume(AUDIT_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event)

    @rpc
    def list_entries(self, organization_id, filters=None, cursor=None, limit=None):
        """The organization's audit trail (Owner/Admin only)."""
        self.auth.require()
        authorize(self.members, organization_id, Action.VIEW_AUDIT)
        return trail.query_entries(self.db, organization_id, filters, cursor, limit)

    @rpc
    def list_agent_entries(self, organization_id, agent_id, filters=None, cursor=None, limit=None):
        """One agent's trail in the organization, a row per changed field (Owner/Admin only)."""
        self.auth.require()
        authorize(self.members, organization_id, Action.VIEW_AUDIT)
        return trail.query_agent_trail(self.db, organization_id, agent_id, filters, cursor, limit)
