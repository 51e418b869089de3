"""The members service's answers to the command pipeline's questions (common.commands): who is a member
of an organization and with which roles, read from members' own tables. The other services answer the
same questions from their read models of these tables (common.membership_facts)."""
from nameko.extensions import DependencyProvider

from common.authz import check_allowed
from common.db import service_store
from common.errors import organization_not_found
from common.permissions import sort_roles
from services.members.member_rules import find_member


class Memberships:
    def __init__(self, store):
        self.store = store

    def membership(self, organization_id, user_id):
        """The user's membership (roles), or NotFound as for any organization's id."""
        with self.store.read() as session:
            found = find_member(session, organization_id, user_id)
            if found is None:
                raise organization_not_found()
            return {"organization_id": organization_id, "user_id": user_id, "roles": sort_roles(found.roles)}

    def authorize(self, identity, organization_id, action):
        """The caller's membership if their roles allow `action`; NotFound for a non-member, else Forbidden."""
        membership = self.membership(organization_id, identity.id)
        check_allowed(membership["roles"], action)
        return membership


class OwnMemberships(DependencyProvider):
    def setup(self):
        self.store = service_store(self.container)

    def get_dependency(self, worker_ctx):
        return Memberships(self.store)
