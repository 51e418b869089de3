import pytest

from common.permissions import MATRIX, Action, Role, allows, sort_roles

# product rules §2, row by row: which roles may do what. Written out again on purpose: the matrix in
# common.permissions must match the product's table, not itself.
SPEC = {
    "rename_organization": "owner admin",
    "delete_organization": "owner admin",
    "manage_invitations": "owner admin",
    "edit_member_roles": "owner admin",
    "remove_members": "owner admin",
    "manage_budget_groups": "owner admin",
    "create_agents": "owner admin builder",
    "view_billing": "owner billing",
    "grant_credits": "owner billing",
    "use_any_agent": "owner admin",
    "use_granted_agents": "builder member",
    "view_audit": "owner admin",
    "view_members": "owner admin builder member billing",
    "manage_api_keys": "owner admin",          # SPEC §9: Owner/Admin create, list and revoke API keys
    "manage_payments": "owner billing",        # SPEC §11: the roles that see billing
    "manage_alerts": "owner admin billing",    # issue 15: budget alert settings and the alerts raised
}


@pytest.mark.parametrize("action, roles", SPEC.items())
@pytest.mark.parametrize("role", [r.value for r in Role])
def test_matrix_matches_the_spec(action, roles, role):
    assert allows([role], action) is (role in roles.split())


def test_any_role_of_a_set_grants():
    assert allows(["member", "billing"], Action.VIEW_BILLING)
    assert not allows(["member", "billing"], Action.VIEW_AUDIT)
    assert not allows([], Action.VIEW_MEMBERS)


def test_every_action_has_a_row():
    assert set(MATRIX) == set(Action)


def test_unknown_role_or_action_is_an_error_not_a_grant():
    with pytest.raises(ValueError):
        allows(["superuser"], Action.VIEW_AUDIT)
    with pytest.raises(ValueError):
        allows(["owner"], "launch_rockets")


def test_roles_are_shown_in_a_stable_order():
    assert sort_roles(["billing", "member", "owner", "owner"]) == ["owner", "member", "billing"]
