"""An invitation's address and the agents it assigns (product rules §3); its roles are the members
service's parse_roles."""
from marshmallow import fields
from marshmallow.validate import Length

from common.contracts.base import Coded, Contract
from common.contracts.fields import EmailAddress, ListOf

MAX_AGENTS_PER_INVITATION = 100
AGENT_ID_MAX_LENGTH = 64
EMAIL_REQUIRED = Coded("Email is required.", "email_required")
AGENT_IDS = Coded("agent_ids must be a list of agent ids.", "invalid_type")


class InvitationInput(Contract):
    email = EmailAddress(required=True, blank=EMAIL_REQUIRED, invalid=Coded("Email must be a string.", "invalid_type"),
                         not_an_address=Coded("Email is not a valid address, or is written with compatibility "
                                              "characters (such as the Kelvin sign for a K).", "invalid_email"))
    agent_ids = ListOf(fields.String(validate=[Length(1, AGENT_ID_MAX_LENGTH, error=AGENT_IDS)],
                                     error_messages={"invalid": AGENT_IDS, "null": AGENT_IDS}),
                       allow_none=True, error_messages={"invalid": AGENT_IDS},
                       validate=[Length(max=MAX_AGENTS_PER_INVITATION, error=Coded(
                           f"An invitation assigns at most {MAX_AGENTS_PER_INVITATION} agents.", "too_many_agents"))])
