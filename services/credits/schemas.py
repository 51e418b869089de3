"""Marshmallow schemas of the credits service (grants, spends, budget groups): arrive with the credits issue."""
