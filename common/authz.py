"""Permission checks: the matrix (common.permissions) applied to a caller's membership.

The members service owns memberships and checks with `check_allowed` on its own data; every other
service asks members for the caller's membership with `authorize`.
"""
from common.errors import Forbidden
from common.permissions import allows
from common.rpc import call


def check_allowed(roles, action):
    """Forbidden unless `roles` grant `action` (see common.permissions.MATRIX)."""
    if not allows(roles, action):
        raise Forbidden("Your roles in this organization do not allow this action.",
                        code="forbidden", details={"action": str(getattr(action, "value", action))})


def authorize(members_rpc, organization_id, action):
    """The caller's membership in the organization, if their roles allow `action`.

    A caller who is not a member gets NotFound (raised by the members service), never Forbidden, so
    organization ids cannot be probed.
    """
    membership = call(members_rpc.my_membership, organization_id)
    check_allowed(membership["roles"], action)
    return membership


# The members service answers member_roles for at most this many ids at once.
MEMBER_ROLES_BATCH = 500


def roles_of_members(members_rpc, organization_id, user_ids):
    """{user_id: roles} of those among `user_ids` who are members, asked in batches the members
    service accepts (the caller must be a member: NotFound otherwise)."""
    roles = {}
    for start in range(0, len(user_ids), MEMBER_ROLES_BATCH):
        roles.update(call(members_rpc.member_roles, organization_id, user_ids[start:start + MEMBER_ROLES_BATCH]))
    return roles
