"""Nameko entrypoints of the credits service. Today: health, the outbox, and the permission-checked
credits page (Owner/Billing), which shows an empty account until the ledger arrives with the credits
issue."""
from nameko.rpc import RpcProxy

from common.auth import Auth
from common.authz import authorize
from common.db import Database
from common.outbox import OutboxRelay
from common.permissions import Action
from common.rpc import rpc
from services.credits import domain
from services.credits.models import OutboxEvent


class CreditsService:
    name = "credits"

    auth = Auth()
    db = Database()
    outbox = OutboxRelay(OutboxEvent)
    members = RpcProxy("members")

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def get_credits(self, organization_id):
        """Balance and grants of the organization (Owner or Billing holder only)."""
        self.auth.require()
        authorize(self.members, organization_id, Action.VIEW_BILLING)
        return domain.credits_page(organization_id)
