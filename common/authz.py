"""Permission checks for services other than members (which owns memberships and checks locally)."""
from common.errors import Forbidden
from common.permissions import allows
from common.rpc import call


def authorize(members_rpc, organization_id, action):
    """The caller's membership in the organization, if their roles allow `action`.

    A caller who is not a member gets NotFound (raised by the members service), never Forbidden, so
    organization ids cannot be probed.
    """
    membership = call(members_rpc.my_membership, organization_id)
    if not allows(membership["roles"], action):
        raise Forbidden("Your roles in this organization do not allow this action.",
                        code="forbidden", details={"action": str(getattr(action, "value", action))})
    return membership
