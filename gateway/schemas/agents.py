"""Agents, their contributors and assignees, and moving an agent to another organization."""
from marshmallow import Schema, fields, validate

from common.contracts.agents import AgentInput, AgentPersonInput
from common.paging import SEARCH_MAX_LENGTH
from common.schemas import UserId
from gateway.schemas.common import ContractField, ListQuery, Strict, StrictBoolean, date_time, page_of, roles_list


# ---- requests -------------------------------------------------------------------------------------
def _agent_text(name, description):
    # The orgs service applies the agent fields' rules (common.contracts.agents) after the caller's roles
    # (a 404 or 403 comes first); absent fields stay absent, so that PATCH changes only what it names.
    return ContractField(AgentInput.field(name), allow_none=True, metadata={"description": description})


class AgentBody(Strict):
    name = _agent_text("name", "required on create; trimmed; 1 to 200 characters")
    code = _agent_text("code", "up to 100 characters")
    mission = _agent_text("mission", "up to 2,000 characters")
    welcome_message = _agent_text("welcome_message", "up to 2,000 characters")
    instructions = _agent_text("instructions", "up to 20,000 characters")
    avatar_url = _agent_text("avatar_url", "an http(s) URL, up to 2,048 characters; empty or null for none")


class AgentsQuery(ListQuery):
    q = fields.String(load_default=None, metadata={"description": "search in name", "maxLength": SEARCH_MAX_LENGTH})


class UserIdBody(Strict):
    # The gateway checks the JSON type and length; the orgs service the rest (printable) after the roles.
    user_id = ContractField(AgentPersonInput.field("user_id"), shape=UserId(), required=True)


class TransferBody(Strict):
    destination_organization_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    dry_run = StrictBoolean(required=True, metadata={"description": "true: only report who keeps access"})


# What services/orgs/agents.py agent_permissions() may grant.
AGENT_PERMISSIONS = ["edit", "delete", "manage_access", "transfer", "view_audit", "use"]


# ---- responses ------------------------------------------------------------------------------------
class Agent(Schema):
    id = fields.String()
    organization_id = fields.String()
    name = fields.String()
    code = fields.String()
    mission = fields.String()
    welcome_message = fields.String()
    instructions = fields.String()
    avatar_url = fields.String(allow_none=True)
    contributors = fields.List(fields.String(), metadata={"description": "user ids of contributing Builders"})
    assignees = fields.List(fields.String(), metadata={"description": "user ids of members assigned to it"})
    created_by = fields.String()
    created_at = date_time()
    updated_at = date_time()
    permissions = fields.List(fields.String(metadata={"enum": AGENT_PERMISSIONS}), metadata={
        "description": "what the caller may do: edit, delete, manage_access, transfer, view_audit, use"})


AgentPage = page_of(Agent, "AgentPage")


class AgentPerson(Schema):
    user_id = fields.String()
    added_by = fields.String()
    added_at = date_time()


AgentPersonPage = page_of(AgentPerson, "AgentPersonPage")


class TransferOutcome(Schema):
    user_id = fields.String()
    destination_roles = roles_list()
    outcome = fields.String(metadata={"enum": ["will retain access", "will be removed", "will be added",
                                               "retained access", "removed", "added"]})


class TransferReport(Schema):
    agent_id = fields.String()
    name = fields.String()
    source_organization_id = fields.String()
    destination_organization_id = fields.String()
    dry_run = fields.Boolean()
    contributors = fields.List(fields.Nested(TransferOutcome))
    assignees = fields.List(fields.Nested(TransferOutcome))
    correlation_id = fields.String(allow_none=True, metadata={"description": "shared by both organizations' trails"})
    transferred_at = date_time("absent from a dry run", optional=True)
