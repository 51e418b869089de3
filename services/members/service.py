"""Nameko entrypoints of the members service: thin; the rules live in domain.py."""
from nameko.messaging import consume

from common.auth import Auth
from common.db import Database
from common.events import MEMBERS_QUEUE
from common.outbox import OutboxRelay
from common.rpc import rpc
from services.members import domain
from services.members.models import OutboxEvent


class MembersService:
    name = "members"

    auth = Auth()
    db = Database()
    outbox = OutboxRelay(OutboxEvent)

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def register_user(self):
        """Create or refresh the caller's user record from their token's claims."""
        user, created = domain.register_user(self.db, self.auth.require())
        return {"user": user, "created": created}

    @rpc
    def add_founder(self, organization_id):
        """The caller becomes Owner and Billing of a brand-new organization (called by orgs)."""
        return domain.add_founder(self.db, self.auth.require(), organization_id)

    @rpc
    def my_membership(self, organization_id):
        """The caller's membership (roles, member count); NotFound if they are not a member."""
        return domain.membership_of(self.db, organization_id, self.auth.require().id)

    @rpc
    def my_memberships(self):
        return domain.memberships_of_user(self.db, self.auth.require().id)

    @consume(MEMBERS_QUEUE, requeue_on_error=True)
    def on_change_event(self, event):
        if event.get("type") == "organization.deleted":
            domain.forget_organization(self.db, event["target"]["id"])
