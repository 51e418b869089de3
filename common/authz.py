"""Permission checks: the matrix (common.permissions) applied to a caller's membership.

The members service owns memberships and checks with `check_allowed` on its own data; every other
service checks with it against its read model of memberships (common.membership_facts). An API key is
no member: `check_key_allowed` decides for it, from the organization and scopes it carries (SPEC §9).
"""
from common.errors import Forbidden, organization_not_found
from common.permissions import allows


def check_allowed(roles, action):
    """Forbidden unless `roles` grant `action` (see common.permissions.MATRIX)."""
    if not allows(roles, action):
        raise Forbidden("Your roles in this organization do not allow this action.",
                        code="forbidden", details={"action": str(getattr(action, "value", action))})


def check_key_allowed(identity, organization_id, scope=None):
    """An API key acts only in its own organization (any other is NotFound, as for a non-member: ids
    cannot be probed) and only within its scopes: Forbidden for what needs a scope it lacks, or what no
    scope allows (`scope` None)."""
    scope = getattr(scope, "value", scope)      # a common.permissions.Scope or its text
    if identity.key_organization_id != organization_id:
        raise organization_not_found()
    if scope is None:
        raise Forbidden("API keys cannot do this; a member of the organization must.", code="api_key_not_allowed")
    if scope not in identity.key_scopes:
        raise Forbidden(f"This API key lacks the scope {scope}.", code="api_key_scope_missing",
                        details={"scope": scope})
