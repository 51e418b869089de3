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
- `input`: the contract (common.contracts) its arguments are loaded with before it runs, so the method
  receives validated values (a refusal is the 422 naming the field): a Contract whose fields are named
  like the arguments, or {argument: Contract} for an argument that is itself an object of fields;
  `Partial(Contract)` for an edit, where absent fields stay absent.
- `idempotency` (commands only): whether it takes an Idempotency-Key in its `idempotency_key` argument,
  OPTIONAL or REQUIRED; the pipeline checks the key (400 invalid_idempotency_key, or
  idempotency_key_required), replays the answer stored under it or stores the new one, fingerprinted with
  the method's name and its validated arguments (the same key with other values is a 409).
- `phases` (commands only): see below.

The method receives what was decided as its first argument after `self`: a `Caller` with the identity
and, where a membership was checked, the caller's membership. Membership facts come from the service's
`memberships` dependency (a read model, or members' own tables in the members service).

A command then receives, second, the open write transaction (`session`) of its unit of work
(common.unit_of_work), which the pipeline commits with the command's outbox events, the handled-request
record and the key's answer, and runs once more if the commit loses a race on a unique key. A command
declared with `phases=True` (it must call another service between reading and writing) receives the
UnitOfWork (`uow`) instead and opens its transactions with it. The domain functions it calls receive
validated values and a session, and decide: they do not authenticate, validate, replay or retry.
"""
import functools
import inspect
from dataclasses import dataclass
from enum import Enum

from common import idempotency
from common.auth import SYSTEM_ACTOR
from common.authz import check_key_allowed
from common.contracts import load
from common.db import retry_on_unique_race
from common.errors import BadRequest, Forbidden, Unauthenticated, organization_not_found
from common.permissions import Action, Scope
from common.rpc import rpc
from common.unit_of_work import UnitOfWork


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
    input: object = None              # a Contract, Partial(Contract) or {argument: either}
    phases: bool = False              # it receives the UnitOfWork, not an open write transaction

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


@dataclass(frozen=True)
class Partial:
    """An edit's contract: the fields given are checked, absent ones stay absent."""
    contract: type


def declaration_of(method):
    """The method's declaration, or None when it has none (and may not be called)."""
    return getattr(method, "declaration", None)


def command(access, key_scope=None, idempotency=None, input=None, phases=False):
    """An RPC method that changes something, callable as `access` says (see the module's text)."""
    return _declared("command", access, key_scope, idempotency, input, phases)


def query(access, key_scope=None, input=None):
    """An RPC method that only reads, callable as `access` says (see the module's text)."""
    return _declared("query", access, key_scope, input=input)


def _declared(kind, access, key_scope, idempotency=None, input=None, phases=False):
    if idempotency not in (None, OPTIONAL, REQUIRED):
        raise ValueError(f"idempotency is {OPTIONAL!r}, {REQUIRED!r} or None, not {idempotency!r}")
    declaration = Declaration(kind, access if isinstance(access, Action) else Access(access),
                              Scope(key_scope) if key_scope is not None else None, idempotency, input, phases)
    # What a command takes after `caller`: its open write transaction, or its unit of work.
    given = () if kind == "query" else ("uow",) if phases else ("session",)

    def decorate(method):
        signature = inspect.signature(method)
        parameters = list(signature.parameters.values())
        if [p.name for p in parameters[1:2 + len(given)]] != ["caller", *given]:
            raise TypeError(f"{method.__qualname__} must take {', '.join(['caller', *given])} after `self`")
        public = signature.replace(parameters=[parameters[0], *parameters[2 + len(given):]])
        if declaration.needs_organization and ORGANIZATION_ARGUMENT not in public.parameters:
            raise TypeError(f"{method.__qualname__} checks a membership: it needs an {ORGANIZATION_ARGUMENT} argument")
        if (declaration.idempotency is not None) != (IDEMPOTENCY_ARGUMENT in public.parameters):
            raise TypeError(f"{method.__qualname__}: an {IDEMPOTENCY_ARGUMENT} argument goes with a declared "
                            "idempotency, and only with one")

        @functools.wraps(method)
        def entrypoint(self, *args, **kwargs):
            arguments = public.bind(self, *args, **kwargs).arguments
            del arguments["self"]
            caller = admit(self, declaration, arguments.get(ORGANIZATION_ARGUMENT))
            key = None
            if declaration.idempotency is not None:
                key = arguments[IDEMPOTENCY_ARGUMENT] = checked_key(declaration, arguments.get(IDEMPOTENCY_ARGUMENT))
            arguments = validated(declaration.input, arguments)
            if kind == "query":
                return method(self, caller, **arguments)
            uow = unit_of_work(self, caller, key, method.__name__, arguments)
            if phases:
                return retry_on_unique_race(lambda: method(self, caller, uow, **arguments))
            return uow.run(lambda session: method(self, caller, session, **arguments))

        entrypoint.__signature__ = public      # what callers send: Nameko checks arguments against it
        entrypoint.declaration = declaration
        return rpc(entrypoint)
    return decorate


def validated(contract, arguments):
    """The arguments with those the contract names loaded by it (see `input` in the module's text)."""
    if contract is None:
        return arguments
    if isinstance(contract, dict):
        for name, argument_contract in contract.items():
            if name in arguments:
                arguments[name] = _load(argument_contract, arguments[name])
        return arguments
    schema = (contract.contract if isinstance(contract, Partial) else contract).instance()
    # An optional argument sent as None is absent; a required one is refused as missing.
    given = {name: arguments[name] for name, field in schema.fields.items()
             if name in arguments and (arguments[name] is not None or field.required)}
    return {**arguments, **_load(contract, given)}


def _load(contract, data):
    if isinstance(contract, Partial):
        return load(contract.contract, data, partial=True)
    return load(contract, data)


def unit_of_work(service, caller, key, name, arguments):
    """The command's UnitOfWork: the service's database (`db`) and tables (its Database provider), and
    the key's owner, the key, and the fingerprint of the request it is stored under."""
    fingerprint = idempotency.operation(name, {k: v for k, v in arguments.items() if k != IDEMPOTENCY_ARGUMENT})
    return UnitOfWork(service.db, getattr(type(service), "db", None),
                      caller.identity.id if caller.identity is not None else None, key, fingerprint)


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
