"""Nameko entrypoints of the audit service: thin; storing events (and the memberships they carry) is in
reactions.py, the trail's storage, chain and queries in trail.py, the signed checkpoints and verification
in checkpoints.py (what is hashed and signed: chain.py). Who may read a trail is decided on the read
model of memberships (common.readmodels), not by asking members. It has no commands: its methods are queries,
their filters loaded by the declared input (common.commands) before they run."""
import logging

from nameko.timer import timer

from common.auth import Auth
from common.commands import CREDENTIAL, query
from common.config import settings
from common.db import Database
from common.events import AUDIT_QUEUE, change_event_or_none
from common.framework.batch_consume import consume_batch
from common.heap import FrozenStartupHeap
from common.membership_facts import MembershipFacts
from common.permissions import Action, Scope
from common.readmodels import ReadModelFill
from common.rpc import service_proxy
from services.audit import checkpoints, reactions, trail
from services.audit.models import READ_MODELS
from services.audit.schemas import AgentTrailFiltersInput, AuditFiltersInput

log = logging.getLogger(__name__)
CHECKPOINT_SECONDS = settings().audit_checkpoint_seconds


class AuditService:
    name = "audit"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database()
    members = service_proxy("members")      # only to confirm a refusal (common.readmodels.Memberships)
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)
    signing_key = checkpoints.SigningKey()  # read (or made, in development) at start: a bad one stops the start

    @query(CREDENTIAL)
    def ping(self, caller):
        self.fill.check()               # degraded until the read model was filled from members
        return "pong"

    # Events come in batches (common.framework.batch_consume), acknowledged only after the batch's entries (and the
    # states they carry) are committed; on an error (database down) the batch goes back to the queue. A
    # message that is not a change event is logged and dropped: retrying cannot help.
    @consume_batch(AUDIT_QUEUE, requeue_on_error=True)
    def on_change_events(self, messages):
        events = [event for event in map(change_event_or_none, messages) if event is not None]
        if events:
            reactions.handle_change_events(self.db, events)

    @query(Action.VIEW_AUDIT, key_scope=Scope.AUDIT_READ, input={"filters": AuditFiltersInput})
    def list_entries(self, caller, organization_id, filters=None, cursor=None, limit=None):
        """The organization's audit trail (Owner/Admin only)."""
        return trail.query_entries(self.db, organization_id, filters, cursor, limit)

    @query(Action.VIEW_AUDIT, key_scope=Scope.AUDIT_READ, input={"filters": AuditFiltersInput})
    def export_entries(self, caller, organization_id, filters=None, cursor=None, limit=None):
        """A page of the trail for a download; the first page also holds every signed checkpoint of the
        organization, read before its entries, so that each names an entry the download holds."""
        checkpoints_first = (checkpoints.all_checkpoints(self.db, organization_id) if cursor is None else None)
        page = trail.query_entries(self.db, organization_id, filters, cursor, limit)
        return dict(page, checkpoints=checkpoints_first) if checkpoints_first is not None else page

    @query(Action.VIEW_AUDIT, key_scope=Scope.AUDIT_READ, input={"filters": AgentTrailFiltersInput})
    def list_agent_entries(self, caller, organization_id, agent_id, filters=None, cursor=None, limit=None):
        """One agent's trail in the organization, a row per changed field (Owner/Admin only)."""
        return trail.query_agent_trail(self.db, organization_id, agent_id, filters, cursor, limit)

    # ---- the hash chain (SPEC §13) ----------------------------------------------------------------------
    @timer(interval=CHECKPOINT_SECONDS)
    def sign_checkpoints(self):
        try:
            signed = checkpoints.sign_moved_heads(self.db, self.signing_key)
        except Exception:           # the database away for a moment: the next run signs what moved
            log.warning("could not sign the audit checkpoints", exc_info=True)
            return
        if signed:
            log.debug("signed %d audit checkpoint(s)", signed)

    @query(Action.VIEW_AUDIT, key_scope=Scope.AUDIT_READ)
    def verify_chain(self, caller, organization_id):
        """The organization's chain checked entry by entry and against its latest signed checkpoint."""
        return checkpoints.verify_chain(self.db, organization_id, self.signing_key.public_key())

    @query(Action.VIEW_AUDIT, key_scope=Scope.AUDIT_READ)
    def list_checkpoints(self, caller, organization_id, cursor=None, limit=None):
        return checkpoints.list_checkpoints(self.db, organization_id, cursor, limit)

    @query(CREDENTIAL)
    def public_key(self, caller):
        """The key the checkpoints are signed with (public: an auditor verifies exports with it)."""
        return checkpoints.public_key_dict(self.signing_key)
