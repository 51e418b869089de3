"""Permission checks: the matrix (common.permissions) applied to a caller's membership.

The members service owns memberships and checks with `check_allowed` on its own data; every other
service checks with it against its read model of memberships (common.membership_facts).
"""
from common.errors import Forbidden
from common.permissions import allows


def check_allowed(roles, action):
    """Forbidden unless `roles` grant `action` (see common.permissions.MATRIX)."""
    if not allows(roles, action):
        raise Forbidden("Your roles in this organization do not allow this action.",
                        code="forbidden", details={"action": str(getattr(action, "value", action))})
