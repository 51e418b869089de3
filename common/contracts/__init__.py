"""Contracts: one marshmallow schema per input shape of the API, with the real limits as validators and the
messages and codes the API answers them with, a module per area. The services load their input with them
(`load`), and the gateway's request schemas take their fields from them (gateway/schemas/common.py
ContractField), so /openapi.json documents the very rules the services apply.

- base.py      Coded messages, the Contract base schema, load() (a refusal as ValidationFailed)
- fields.py    the field types: Text (trimmed), EmailAddress, Amount (credits), IsoTime, ListOf
- organizations.py, agents.py, invitations.py, api_keys.py, credits.py (grants, spends), budgets.py,
  alerts.py, audit.py (the trails' filters)
"""
from common.contracts.base import Coded, Contract, load

__all__ = ["Coded", "Contract", "load"]
