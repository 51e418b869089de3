"""The webhooks service (SPEC §12): change events pushed to the organizations' endpoints."""
