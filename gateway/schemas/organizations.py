"""Organizations and the signed-in user (/v1/me): both answered by the orgs service."""
from marshmallow import Schema, fields, validate

from common.contracts.organizations import OrganizationNameInput
from common.permissions import Action, permitted_actions
from gateway.schemas.common import ContractField, Strict, date_time, page_of, roles_list


# ---- requests -------------------------------------------------------------------------------------
class OrganizationNameBody(Strict):
    # The orgs service applies the name's rules (common.contracts.organizations) and answers them: on
    # create, a replayed Idempotency-Key is answered before the name is looked at. Whatever came is passed
    # on, None when absent.
    name = ContractField(OrganizationNameInput.field("name"), load_default=None, allow_none=True,
                         metadata={"description": "trimmed; 1 to 200 characters"})


class ActiveOrganizationBody(Strict):
    organization_id = fields.String(required=True, validate=validate.Length(max=64))


# ---- responses ------------------------------------------------------------------------------------
class Membership(Schema):
    organization_id = fields.String()
    roles = roles_list()


class Me(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    active_organization_id = fields.String()
    memberships = fields.List(fields.Nested(Membership))


class OrganizationCard(Schema):
    id = fields.String()
    name = fields.String()
    type = fields.String(metadata={"enum": ["individual", "collective"]})
    roles = roles_list()
    member_count = fields.Integer()
    active = fields.Boolean()
    created_at = date_time()
    updated_at = date_time()
    created_by = fields.String()
    permissions = fields.Function(lambda card: permitted_actions(card["roles"]),
                                  metadata={"type": "array", "description": "actions the caller's roles allow",
                                            "items": {"type": "string", "enum": [a.value for a in Action]}})


OrganizationPage = page_of(OrganizationCard, "OrganizationPage")
