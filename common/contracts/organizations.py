"""An organization's name (product rules §1)."""
from common.contracts.base import Coded, Contract
from common.contracts.fields import Name

NAME_MAX_LENGTH = 200
NAME_REQUIRED = "Organization name is required."
NAME_TOO_LONG = f"Name must be {NAME_MAX_LENGTH} characters or fewer."


class OrganizationNameInput(Contract):
    """Creating or renaming: missing, null or blank is name_required."""
    name = Name("Organization name", NAME_MAX_LENGTH, required=True, blank=Coded(NAME_REQUIRED, "name_required"),
                invalid=Coded("Organization name must be a string.", "invalid_type"),
                too_long=Coded(NAME_TOO_LONG, "name_too_long"))
