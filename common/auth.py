"""Who is asking: the identity that travels with every RPC call and event.

The gateway authenticates the bearer token and puts the user into Nameko's worker context data;
Nameko copies context data into the headers of every RPC request it makes, so the identity reaches
each downstream service, and onwards from there. Services read it through the `Auth` dependency.
"""
from dataclasses import dataclass

from nameko.extensions import DependencyProvider

from common.errors import Forbidden, Unauthenticated

USER_ID_KEY = "user_id"
USER_EMAIL_KEY = "user_email"
USER_NAME_KEY = "user_name"

SYSTEM_ACTOR = {"id": "system"}

# A user id is the `sub` of the token the gateway verified: 1 to 128 characters, no NUL (every
# service stores it in String(128) columns). The one rule, used by the gateway and every service.
USER_ID_MAX_LENGTH = 128


def is_valid_user_id(value):
    return isinstance(value, str) and 0 < len(value) <= USER_ID_MAX_LENGTH and "\x00" not in value


def is_reserved_user_id(value):
    """`system` names the platform's own actions (and may call snapshot RPCs): no token may claim it."""
    return value == SYSTEM_ACTOR["id"]


@dataclass(frozen=True)
class Identity:
    id: str
    email: str
    name: str

    def as_actor(self):
        """The actor of a change event made by this user."""
        return {"id": self.id, "email": self.email}


class AuthContext:
    """Per-worker view of the caller's identity."""

    def __init__(self, worker_ctx):
        self._worker_ctx = worker_ctx

    @property
    def identity(self):
        data = self._worker_ctx.data
        if not data.get(USER_ID_KEY):
            return None
        return Identity(data[USER_ID_KEY], data.get(USER_EMAIL_KEY) or "", data.get(USER_NAME_KEY) or "")

    def require(self):
        """The caller's identity; an RPC call made without one is refused."""
        identity = self.identity
        if identity is None:
            raise Unauthenticated("This call needs a signed-in user.")
        return identity

    def require_system(self):
        """Only the platform itself may call this (read models filled or rebuilt from a snapshot,
        common.readmodels); the gateway never forwards such a call, and refuses tokens naming `system`."""
        identity = self.identity
        if identity is None or identity.id != SYSTEM_ACTOR["id"]:
            raise Forbidden("Only the platform itself may call this.", code="system_only")
        return identity


def context_data(identity):
    """The worker context data that carries `identity` (what the gateway sets for a verified token;
    Nameko copies it into every RPC call the worker makes, and `AuthContext` reads it back)."""
    return {USER_ID_KEY: identity.id, USER_EMAIL_KEY: identity.email, USER_NAME_KEY: identity.name}


class Auth(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return AuthContext(worker_ctx)
