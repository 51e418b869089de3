"""Reading a service's read model of memberships (common.readmodels): the answers members' RPCs used
to give, decided from local facts.

A read model lags its owner by the time an event takes to arrive (milliseconds). Access is granted
from local facts alone, so no request waits on another service; a refusal (not a member, roles that
do not allow it, a person not found) is first confirmed with the owner when it answers
(members.membership_states), whose states are applied here: a member added a moment ago is never
refused, and with the owner down the local answer stands. A revoked right can outlive its
revocation by that lag, never longer.
"""
from nameko.extensions import DependencyProvider
from sqlalchemy import func, select

from common.authz import check_allowed, check_key_allowed
from common.db import service_store
from common.errors import AppError, organization_not_found
from common.permissions import allows, sort_roles
from common.readmodels import apply_membership
from common.rpc import call

CONFIRM_BATCH = 500     # members.membership_states answers this many ids at a time


class Memberships:
    """Membership facts of one service's read model, with the shapes of members' old answers.
    `owner`, a callable giving the members RPC proxy, is used to confirm refusals; None: never."""

    def __init__(self, store, models, owner=None):
        self.store, self.models, self._owner = store, models, owner

    def _live(self):
        facts = self.models.memberships
        query = select(facts).where(facts.active.is_(True))
        retired = self.models.retired_organizations()
        return query if retired is None else query.where(facts.organization_id.not_in(retired))

    def _counts(self, session, organization_ids):
        facts = self.models.memberships
        if not organization_ids:
            return {}
        return dict(session.execute(
            self._live().with_only_columns(facts.organization_id, func.count())
            .where(facts.organization_id.in_(organization_ids)).group_by(facts.organization_id)).all())

    @staticmethod
    def _dict(fact, member_count):
        return {"organization_id": fact.organization_id, "user_id": fact.user_id, "roles": sort_roles(fact.roles),
                "joined_at": fact.joined_at, "member_count": member_count}

    def confirm(self, organization_id, user_ids):
        """Ask the owner for these people's current states and apply them; False if it cannot answer."""
        owner = self._owner() if self._owner is not None else None
        if owner is None or not user_ids:
            return False
        user_ids, states = list(user_ids), []
        try:
            for start in range(0, len(user_ids), CONFIRM_BATCH):   # the owner answers 500 ids at a time
                states += call(owner.membership_states, organization_id, user_ids[start:start + CONFIRM_BATCH],
                               timeout=3)
        except AppError:
            return False            # the owner is down or refuses: the local answer stands
        with self.store.write() as session:
            for state in states:
                apply_membership(session, self.models, state)
        return True

    def _local_membership(self, organization_id, user_id):
        facts = self.models.memberships
        with self.store.read() as session:
            fact = session.scalar(self._live().where(facts.organization_id == organization_id,
                                                     facts.user_id == user_id))
            if fact is None:
                return None
            return self._dict(fact, self._counts(session, [organization_id]).get(organization_id, 1))

    def membership(self, organization_id, user_id):
        """The user's membership (roles, member count), or NotFound as for any organization's id."""
        if not isinstance(organization_id, str) or not isinstance(user_id, str):
            raise organization_not_found()
        found = self._local_membership(organization_id, user_id)
        if found is None and self.confirm(organization_id, [user_id]):
            found = self._local_membership(organization_id, user_id)
        if found is None:
            raise organization_not_found()
        return found

    def memberships_of(self, user_id):
        with self.store.read() as session:
            facts = session.scalars(self._live().where(self.models.memberships.user_id == user_id)).all()
            counts = self._counts(session, [f.organization_id for f in facts])
            return [self._dict(f, counts.get(f.organization_id, 1)) for f in facts]

    def _local_roles(self, organization_id, user_ids):
        with self.store.read() as session:
            facts = session.scalars(self._live().where(
                self.models.memberships.organization_id == organization_id,
                self.models.memberships.user_id.in_(list(user_ids)))).all()
            return {f.user_id: sort_roles(f.roles) for f in facts}

    def roles_of(self, organization_id, user_ids):
        """{user_id: roles} of those among `user_ids` who are members (those missing here are confirmed
        with the owner first)."""
        user_ids = list(dict.fromkeys(user_ids))
        if not user_ids:
            return {}
        roles = self._local_roles(organization_id, user_ids)
        missing = [u for u in user_ids if u not in roles]
        if missing and self.confirm(organization_id, missing):
            roles = self._local_roles(organization_id, user_ids)
        return roles

    def authorize(self, identity, organization_id, action, key_scope=None):
        """The caller's membership if their roles allow `action`; NotFound for a non-member (ids cannot
        be probed), Forbidden for a member whose roles do not allow it (both confirmed first). An API key
        may do it only if `key_scope` is given and it holds that scope in this organization
        (common.authz.check_key_allowed); it has no membership (None)."""
        if identity.is_key:
            check_key_allowed(identity, organization_id, key_scope)
            return None
        membership = self.membership(organization_id, identity.id)
        if not allows(membership["roles"], action) and self.confirm(organization_id, [identity.id]):
            membership = self.membership(organization_id, identity.id)
        check_allowed(membership["roles"], action)
        return membership


class MembershipFacts(DependencyProvider):
    """Gives workers the service's `Memberships` (its read model of members' facts). `owner` names the
    service's RpcProxy attribute for members (refusals are confirmed with it), e.g. "members"."""

    def __init__(self, models, owner=None):
        self.models, self.owner = models, owner

    def setup(self):
        self.store = service_store(self.container)

    def get_dependency(self, worker_ctx):
        # The owner's proxy is another dependency of the same worker: looked up when first needed.
        owner = (lambda: getattr(worker_ctx.service, self.owner)) if self.owner else None
        return Memberships(self.store, self.models, owner)
