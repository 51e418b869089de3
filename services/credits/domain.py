"""Domain logic of the credits service. The ledger (grants, spends, expiries) arrives with the credits
issue; until then no grant can exist, so every organization's account is empty."""


def credits_page(organization_id):
    return {"organization_id": organization_id, "balance": "0", "grants": []}
