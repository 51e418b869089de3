"""UTC time helpers. Databases may hand back naive datetimes (SQLite keeps no zone): we only ever
store UTC, so a naive value read back is UTC."""
from datetime import UTC, datetime


def utcnow():
    return datetime.now(UTC)


def as_utc(value):
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value):
    """ISO 8601 in UTC with a `Z`, e.g. 2026-11-23T14:11:15.123456Z."""
    value = as_utc(value)
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text):
    """Parse an ISO 8601 timestamp; a value without a zone is taken as UTC. Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
