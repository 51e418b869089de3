"""Marshmallow schemas of the HTTP API, a module per resource: what requests may contain and what answers
look like. gateway/openapi.py names each component after its schema class, so class names are unique
across the modules."""
