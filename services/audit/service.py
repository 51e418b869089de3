"""Nameko entrypoints of the audit service: thin; the rules live in domain.py."""
import logging

from nameko.messaging import consume
from nameko.rpc import RpcProxy

from common.auth import Auth
from common.authz import authorize
from common.db import Database
from common.events import AUDIT_QUEUE, InvalidChangeEvent
from common.outbox import OutboxRelay
from common.permissions import Action
from common.rpc import rpc
from services.audit import domain
from services.audit.models import OutboxEvent

log = logging.getLogger(__name__)


class AuditService:
    name = "audit"

    auth = Auth()
    db = Database()
    outbox = OutboxRelay(OutboxEvent)
    members = RpcProxy("members")

    @rpc
    def ping(self):
        return "pong"

    # Acknowledged only after the entry is committed; on an error (database down) the event goes back
    # to the queue. A message that is not a change event is logged and dropped: retrying cannot help.
    @consume(AUDIT_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        try:
            domain.store_event(self.db, message)
        except InvalidChangeEvent:
            log.error("dropping a message that is not a change event", exc_info=True)

    @rpc
    def list_entries(self, organization_id, filters=None, cursor=None, limit=None):
        """The organization's audit trail (Owner/Admin only)."""
        self.auth.require()
        authorize(self.members, organization_id, Action.VIEW_AUDIT)
        return domain.query_entries(self.db, organization_id, filters, cursor, limit)

    @rpc
    def list_agent_entries(self, organization_id, agent_id, filters=None, cursor=None, limit=None):
        """One agent's trail in the organization, a row per changed field (Owner/Admin only)."""
        self.auth.require()
        authorize(self.members, organization_id, Action.VIEW_AUDIT)
        return domain.query_agent_trail(self.db, organization_id, agent_id, filters, cursor, limit)
