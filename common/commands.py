"""The one pipeline of every RPC method: each declares who may call it, and one tested place decides.

A service method is exposed with `@command(...)` (it writes) or `@query(...)` (it reads), never with a bare
`@rpc`: the RPC entrypoint refuses a method that declares nothing (common.framework.rpc.Rpc, deny by default), and
a unit test walks every service for one. The declaration names:
- `access`: what the caller must be, checked before the method runs —
  an `Action` of the permission matrix (common.permissions): a member of the `organization_id` argument
  whose roles allow it (NotFound for a non-member, as for any id that cannot be probed; Forbidden else);
  `MEMBER`: any member of it (the method decides finer rules from the roles it is given);
  `PERSON`: a signed-in person, no organization involved (their own invitations, usage, organizations);
  `USES_AGENT`: the right to use the `agent_id` argument, which the method decides itself from the read
  models in the same reads as the spend (the hot path: no statement is added for it);
  `SYSTEM`: the platform itself (read-model snapshots); `SERVICE`: any identified caller, for the
  services' own confirmations (which answer nothing a caller could not already know);
  `CREDENTIAL`: no caller yet (the argument is the credential, or it is a health check).
- `key_scope`: the scope (common.permissions.Scope) that lets an organization API key call it, in its
  own organization only; without one a key is refused (403 api_key_not_allowed; another organization's
  ids are 404, as for a stranger).
- `idempotency` (commands only): whether it takes an Idempotency-Key in its `idempotency_key` argument,
  OPTIONAL or REQUIRED; the pipeline checks the key (400 invalid_idempotency_key, or
  idempotency_key_required) and hands the method the key or None. The method stores its answer under it
  with common.idempotency.keyed_write (or, for the spend, the same find/remember in its own phases).

The method receives what was decided as its first argument after `self`: a `Caller` with the identity
and, where a membership was checked, the caller's membership. Membership facts come from the service's
`memberships` dependency (a read model, or members' own tables in the members service).
"""
import functools
import inspect
from dataclasses import dataclass
from enum import Enum

from common import idempotency
from common.auth import SYSTEM_ACTOR
from common.authz import check_key_allowed
from common.errors import BadRequest, Forbidden, Unauthenticated, organization_not_found
from common.permissions import Action, Scope
from common.rpc import rpc


class Access(str, Enum):
    MEMBER = "member"
    PERSON = "person"
    USES_AGENT = "uses_agent"
    SYSTEM = "system"
    SERVICE = "service"
    CREDENTIAL = "credential"


MEMBER, PERSON, USES_AGENT = Access.MEMBER, Access.PERSON, Access.USES_AGENT
SYSTEM, SERVICE, CREDENTIAL = Access.SYSTEM, Access.SERVICE, Access.CREDENTIAL

# The argument that names the organization a membership is checked in.
ORGANIZATION_ARGUMENT = "organization_id"
IDEMPOTENCY_ARGUMENT = "idempotency_key"
OPTIONAL, REQUIRED = "optional", "required"


@dataclass(frozen=True)
class Declaration:
    kind: str                   # "command" (writes) or "query" (reads)
    access: Action | Access
    key_scope: Scope | None
    idempotency: str | None = None    # OPTIONAL or REQUIRED: it takes an Idempotency-Key

    @property
    def needs_organization(self):
        return isinstance(self.access, Action) or self.access in (MEMBER, USES_AGENT)


@dataclass(frozen=True)
class Caller:
    """Who calls, as the pipeline established it: `identity` (None only for CREDENTIAL methods) and, for
    an Action or MEMBER method called by a person, their `membership` in the organization (with `roles`)."""
    identity: object
    membership: dict | None = None

    @property
    def roles(self):
        return self.membership["roles"] if self.membership else []


def declaration_of(method):
    """The method's declaration, or None when it has none (and may not be called)."""
    return getattr(method, "declaration", None)


def command(access, key_scope=None, idempotency=None):
    """An RPC method that changes something, callable as `access` says (see the module's text)."""
    return _declared("command", access, key_scope, idempotency)


def query(access, key_scope=None):
    """An RPC method that only reads, callable as `access` says (see the module's text)."""
    return _declared("query", access, key_scope)


def _declared(kind, access, key_scope, idempotency=None):
    if idempotency not in (None, OPTIONAL, REQUIRED):
        raise ValueError(f"idempotency is {OPTIONAL!r}, {REQUIRED!r} or None, not {idempotency!r}")
    declaration = Declaration(kind, access if isinstance(access, Action) else Access(access),
                              Scope(key_scope) if key_scope is not None else None, idempotency)

    def decorate(method):
        signature = inspect.signature(method)
        parameters = list(signature.parameters.values())
        if len(parameters) < 2 or parameters[1].name != "caller":
            raise TypeError(f"{method.__qualname__} must take `caller` after `self`")
        public = signature.replace(parameters=[parameters[0], *parameters[2:]])
        if declaration.needs_organization and ORGANIZATION_ARGUMENT not in public.parameters:
            raise TypeError(f"{method.__qualname__} checks a membership: it needs an {ORGANIZATION_ARGUMENT} argument")
        if (declaration.idempotency is not None) != (IDEMPOTENCY_ARGUMENT in public.parameters):
            raise TypeError(f"{method.__qualname__}: an {IDEMPOTENCY_ARGUMENT} argument goes with a declared "
                            "idempotency, and only with one")

        @functools.wraps(method)
        def entrypoint(self, *args, **kwargs):
            bound = public.bind(self, *args, **kwargs)
            caller = admit(self, declaration, bound.arguments.get(ORGANIZATION_ARGUMENT))
            if declaration.idempotency is not None:
                bound.arguments[IDEMPOTENCY_ARGUMENT] = checked_key(declaration,
                                                                    bound.arguments.get(IDEMPOTENCY_ARGUMENT))
            return method(self, caller, *bound.args[1:], **bound.kwargs)

        entrypoint.__signature__ = public      # what callers send: Nameko checks arguments against it
        entrypoint.declaration = declaration
        return rpc(entrypoint)
    return decorate


def checked_key(declaration, key):
    """The Idempotency-Key as given (None when absent), or the 400 for a malformed or missing one."""
    key = idempotency.check_key(key)
    if key is None and declaration.idempotency == REQUIRED:
        raise BadRequest("This request needs an Idempotency-Key header, so that a retry never repeats it.",
                         code="idempotency_key_required", field="Idempotency-Key")
    return key


def admit(service, declaration, organization_id=None):
    """The Caller of a method with this declaration, or the refusal (401, 403 or 404)."""
    access = declaration.access
    if access is CREDENTIAL:
        return Caller(None)
    identity = service.auth.identity
    if access is SYSTEM:
        if identity is None or identity.id != SYSTEM_ACTOR["id"]:
            raise Forbidden("Only the platform itself may call this.", code="system_only")
        return Caller(identity)
    if identity is None:
        raise Unauthenticated("This call needs a signed-in user.")
    if access is SERVICE:
        return Caller(identity)
    if declaration.needs_organization and not isinstance(organization_id, str):
        raise organization_not_found()
    if identity.is_key:
        # An API key acts only in its own organization and within its scopes; it has no membership.
        if not declaration.needs_organization:
            raise Forbidden("API keys cannot do this; a member of the organization must.", code="api_key_not_allowed")
        check_key_allowed(identity, organization_id, declaration.key_scope)
        return Caller(identity)
    if access is PERSON or access is USES_AGENT:
        return Caller(identity)
    if access is MEMBER:
        return Caller(identity, service.memberships.membership(organization_id, identity.id))
    return Caller(identity, service.memberships.authorize(identity, organization_id, access))
