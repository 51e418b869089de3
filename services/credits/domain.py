"""Domain logic of the credits service (balances, ledger, budget groups): arrives with the credits issue."""
