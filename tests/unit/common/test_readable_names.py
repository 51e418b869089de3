"""One text rule for every name people read (issue 25; common.schemas.name_problem): organizations, agents,
budget groups and API keys refuse control characters (a line break forges a log line), direction overrides
and isolates ("Invoice \\u202egnp.exe"), and names made only of invisible characters, each with a 422 naming
the field and its own code; real names of every script, emoji sequences included, stay accepted."""
import pytest

from common.contracts import load
from common.contracts.agents import AgentInput
from common.contracts.api_keys import ApiKeyInput
from common.contracts.budgets import BudgetGroupInput
from common.contracts.organizations import OrganizationNameInput
from common.errors import ValidationFailed

CONTRACTS = [
    (OrganizationNameInput, {}, "Organization name"),
    (AgentInput, {}, "Agent name"),
    (BudgetGroupInput, {}, "Budget group name"),
    (ApiKeyInput, {"scopes": ["usage:read"]}, "The key's name"),
]

BAD_NAMES = [
    ("Acme\n2026-12-02 10:00:00,000 ERROR common.mail [forged]: sent", "control_character"),
    ("Acme\rX", "control_character"),
    ("A\x7fcme", "control_character"),                       # DEL
    ("A\x85cme", "control_character"),                       # C1: NEXT LINE
    ("Invoice \u202egnp.exe", "direction_override"),
    ("Acme \u2066x\u2069", "direction_override"),
    ("\u200b\u200b\u200b", "invisible_name"),                # zero-width spaces only
    ("\ufeff", "invisible_name"),                            # a BOM
    ("\u0301\u0301", "invisible_name"),                      # combining accents only
    ("\u3164\u3164", "invisible_name"),                      # Hangul fillers
]
GOOD_NAMES = ["Sehat Clinic", "Ünïcode Lab", "عيادة صحة", "診療所", "Family 👨\u200d👩\u200d👧", "Café\u0301 Noir",
              "R&D; =not a formula here"]


@pytest.mark.parametrize("contract, extra, label", CONTRACTS)
@pytest.mark.parametrize("name, code", BAD_NAMES)
def test_a_name_no_one_can_read_is_refused_naming_the_field(contract, extra, label, name, code):
    with pytest.raises(ValidationFailed) as err:
        load(contract, dict(extra, name=name))
    assert (err.value.field, err.value.code) == ("name", code)
    assert err.value.message.startswith(label)


@pytest.mark.parametrize("contract, extra, label", CONTRACTS)
@pytest.mark.parametrize("name", GOOD_NAMES)
def test_names_of_every_script_are_accepted(contract, extra, label, name):
    if contract is ApiKeyInput and "\u200d" in name:
        pytest.skip("an API key's name is printable characters only (no joiner), as it always was")
    assert load(contract, dict(extra, name=name))["name"] == name
