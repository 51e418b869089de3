"""The billing service: the only part of the system that talks to the payment provider (SPEC §11)."""
