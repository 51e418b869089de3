"""The permission matrix of product rules §2, in one place, used by every service and by the gateway."""
from enum import Enum


class Role(str, Enum):
    OWNER = "owner"
    ADMIN = "admin"
    BUILDER = "builder"
    MEMBER = "member"
    BILLING = "billing"


ALL_ROLES = tuple(r.value for r in Role)
# Order used when showing a member's roles.
ROLE_ORDER = {r.value: i for i, r in enumerate(Role)}


class Action(str, Enum):
    RENAME_ORGANIZATION = "rename_organization"
    DELETE_ORGANIZATION = "delete_organization"
    MANAGE_INVITATIONS = "manage_invitations"
    EDIT_MEMBER_ROLES = "edit_member_roles"
    REMOVE_MEMBERS = "remove_members"
    MANAGE_BUDGET_GROUPS = "manage_budget_groups"
    CREATE_AGENTS = "create_agents"
    EDIT_ANY_AGENT = "edit_any_agent"
    EDIT_CONTRIBUTED_AGENTS = "edit_contributed_agents"
    USE_ANY_AGENT = "use_any_agent"
    USE_GRANTED_AGENTS = "use_granted_agents"     # assigned (any role) or contributor (Builder)
    VIEW_BILLING = "view_billing"
    GRANT_CREDITS = "grant_credits"               # product rules §8: POST .../credits/grants (Owner/Billing)
    VIEW_AUDIT = "view_audit"
    VIEW_MEMBERS = "view_members"
    MANAGE_API_KEYS = "manage_api_keys"           # SPEC §9: create, list and revoke organization API keys
    MANAGE_ALERTS = "manage_alerts"               # issue 15: budget alert settings and the alerts raised
    MANAGE_PAYMENTS = "manage_payments"           # SPEC §11: payment methods, purchases, auto top-up, transactions
    MANAGE_WEBHOOKS = "manage_webhooks"           # SPEC §12: endpoints, their secrets, deliveries, test events


class Scope(str, Enum):
    """What an organization API key may be allowed to do (SPEC §9): the one list of scopes."""
    USAGE_WRITE = "usage:write"       # spend on behalf of a member
    USAGE_READ = "usage:read"         # read credits, the ledger, budget groups, alerts and their settings
    AUDIT_READ = "audit:read"         # read the audit trails


SCOPES = tuple(s.value for s in Scope)


_O, _A, _B, _M, _BI = Role.OWNER, Role.ADMIN, Role.BUILDER, Role.MEMBER, Role.BILLING

MATRIX = {
    Action.RENAME_ORGANIZATION: {_O, _A},
    Action.DELETE_ORGANIZATION: {_O, _A},
    Action.MANAGE_INVITATIONS: {_O, _A},
    Action.EDIT_MEMBER_ROLES: {_O, _A},
    Action.REMOVE_MEMBERS: {_O, _A},
    Action.MANAGE_BUDGET_GROUPS: {_O, _A},
    Action.CREATE_AGENTS: {_O, _A, _B},
    Action.EDIT_ANY_AGENT: {_O, _A},
    Action.EDIT_CONTRIBUTED_AGENTS: {_B},
    Action.USE_ANY_AGENT: {_O, _A},
    Action.USE_GRANTED_AGENTS: {_B, _M},
    Action.VIEW_BILLING: {_O, _BI},
    Action.GRANT_CREDITS: {_O, _BI},
    Action.VIEW_AUDIT: {_O, _A},
    Action.VIEW_MEMBERS: {_O, _A, _B, _M, _BI},
    Action.MANAGE_API_KEYS: {_O, _A},
    Action.MANAGE_ALERTS: {_O, _A, _BI},
    Action.MANAGE_PAYMENTS: {_O, _BI},
    Action.MANAGE_WEBHOOKS: {_O, _A},
}


def allows(roles, action):
    """True when any of `roles` (strings or Role) grants `action`."""
    granted = MATRIX[Action(action)]
    return any(Role(r) in granted for r in roles)


def permitted_actions(roles):
    """Every action `roles` grant, as names (what a client may offer the user)."""
    return [action.value for action in Action if allows(roles, action)]


def sort_roles(roles):
    return sorted(set(roles), key=ROLE_ORDER.__getitem__)


# ---- one agent, one person (product rules §2 "use agents", §6): the rules orgs decides its agents by
# and credits decides spends by, given whether the person is among the agent's contributors/assignees.
def contributes(roles, is_contributor):
    """Only members holding Builder contribute: a contributor who lost Builder edits nothing."""
    return Role.BUILDER.value in roles and is_contributor


def may_see_agent(roles, is_contributor, is_assignee):
    return (allows(roles, Action.EDIT_ANY_AGENT) or contributes(roles, is_contributor)
            or (is_assignee and allows(roles, Action.USE_GRANTED_AGENTS)))


def may_use_agent(roles, is_contributor, is_assignee):
    return allows(roles, Action.USE_ANY_AGENT) or (
        allows(roles, Action.USE_GRANTED_AGENTS) and (is_assignee or contributes(roles, is_contributor)))
