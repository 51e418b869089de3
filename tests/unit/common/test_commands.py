"""The one pipeline of every RPC method (common.commands): every method of every service declares who
may call it, an undeclared one answers nobody, and the declaration is enforced the same way everywhere."""
import importlib
import inspect

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import worker_factory
from nameko.testing.utils import get_extension

from common import config, rpc
from common.auth import Identity
from common.commands import (
    CREDENTIAL,
    MEMBER,
    OPTIONAL,
    PERSON,
    REQUIRED,
    SERVICE,
    SYSTEM,
    USES_AGENT,
    command,
    declaration_of,
    query,
)
from common.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from common.permissions import Action, Scope
from gateway.service import GatewayService
from services.credits.service import CreditsService


def service_classes():
    """The Nameko service class of every service the platform runs (common.config.SERVICES): a service added
    there is checked here without anyone remembering to list it."""
    classes = []
    for name in config.SERVICES:
        module = importlib.import_module(f"services.{name}.service")
        classes += [value for value in vars(module).values()
                    if isinstance(value, type) and getattr(value, "name", None) == name]
    return classes


SERVICES = tuple(service_classes())
assert {s.name for s in SERVICES} == set(config.SERVICES)


def rpc_methods(service_cls):
    """(name, method) of every method Nameko exposes over RPC (whatever decorator put it there)."""
    container = ServiceContainer(service_cls, {"AMQP_URI": "memory://"})   # built, never started
    return [(e.method_name, getattr(service_cls, e.method_name)) for e in container.entrypoints
            if isinstance(e, rpc.Rpc)]


@pytest.mark.parametrize("service_cls", SERVICES, ids=lambda s: s.name)
def test_every_rpc_method_declares_who_may_call_it(service_cls):
    methods = rpc_methods(service_cls)
    assert methods, "no RPC methods found: the walk itself is broken"
    undeclared = [name for name, method in methods if declaration_of(method) is None]
    assert undeclared == [], f"{service_cls.name}: {undeclared} declare no access (use @command or @query)"


def test_the_gateway_exposes_no_rpc_method():
    assert rpc_methods(GatewayService) == []


@pytest.mark.parametrize("service_cls", SERVICES, ids=lambda s: s.name)
def test_methods_that_check_a_membership_take_the_organization_and_name_no_caller_to_rpc(service_cls):
    for name, method in rpc_methods(service_cls):
        declaration = declaration_of(method)
        public = inspect.signature(method).parameters
        assert "caller" not in public, f"{name}: the caller is the pipeline's, never sent"
        if isinstance(declaration.access, Action) or declaration.access in (MEMBER, USES_AGENT):
            assert "organization_id" in public, name


class Fake:
    """A service with one method per kind of access, its identity and membership facts set by the test."""
    name = "fake"

    def __init__(self, identity, roles=None):
        self.auth = type("Auth", (), {"identity": identity})()
        self.memberships = FakeMemberships(roles)
        self.db = STORE

    @command(Action.RENAME_ORGANIZATION)
    def rename(self, caller, session, organization_id, name):
        return caller

    @query(Action.VIEW_BILLING, key_scope=Scope.USAGE_READ)
    def balance(self, caller, organization_id):
        return caller

    @query(MEMBER)
    def look(self, caller, organization_id):
        return caller

    @query(PERSON)
    def mine(self, caller):
        return caller

    @query(SYSTEM)
    def snapshot(self, caller):
        return caller

    @query(SERVICE)
    def confirm(self, caller, organization_id):
        return caller

    @query(CREDENTIAL)
    def ping(self, caller):
        return caller


class FakeMemberships:
    def __init__(self, roles):
        self.roles = roles

    def membership(self, organization_id, user_id):
        if self.roles is None or organization_id != "o1":
            raise NotFound("no", code="organization_not_found")
        return {"organization_id": organization_id, "user_id": user_id, "roles": self.roles}

    def authorize(self, identity, organization_id, action):
        from common.authz import check_allowed
        membership = self.membership(organization_id, identity.id)
        check_allowed(membership["roles"], action)
        return membership


ALICE = Identity("alice", "alice@example.com", "Alice")
STORE = None        # set per test by the `store` fixture: the commands' unit of work opens a transaction in it


@pytest.fixture(autouse=True)
def store(make_store):
    global STORE
    STORE = make_store("orgs")
    yield STORE
    STORE = None
SYSTEM_IDENTITY = Identity("system", "", "")


def key(*scopes, organization="o1"):
    return Identity("key:k1", "", "Runtime", key_organization_id=organization, key_scopes=scopes)


def refusal(call):
    with pytest.raises((Unauthenticated, Forbidden, NotFound)) as err:
        call()
    return err.value.code


def test_a_member_whose_roles_allow_the_action_is_admitted_with_their_membership():
    caller = Fake(ALICE, ["owner"]).rename("o1", "New")
    assert caller.identity == ALICE and caller.roles == ["owner"]


def test_refusals_follow_the_matrix_and_hide_other_organizations():
    assert refusal(lambda: Fake(ALICE, ["member"]).rename("o1", "New")) == "forbidden"
    assert refusal(lambda: Fake(ALICE, None).rename("o1", "New")) == "organization_not_found"
    assert refusal(lambda: Fake(ALICE, ["owner"]).rename(["o1"], "New")) == "organization_not_found"
    assert refusal(lambda: Fake(None).rename("o1", "New")) == "unauthenticated"


def test_member_access_gives_the_roles_to_the_method_and_refuses_strangers():
    assert Fake(ALICE, ["member"]).look("o1").roles == ["member"]
    assert refusal(lambda: Fake(ALICE, None).look("o1")) == "organization_not_found"


def test_api_keys_act_in_their_own_organization_within_their_scopes_only():
    assert Fake(key("usage:read")).balance("o1").identity.is_key
    assert refusal(lambda: Fake(key("audit:read")).balance("o1")) == "api_key_scope_missing"
    assert refusal(lambda: Fake(key("usage:read")).balance("o2")) == "organization_not_found"
    assert refusal(lambda: Fake(key("usage:read", "usage:write", "audit:read")).rename("o1", "x")) == \
        "api_key_not_allowed"
    assert refusal(lambda: Fake(key("usage:read")).look("o1")) == "api_key_not_allowed"
    assert refusal(lambda: Fake(key("usage:read")).mine()) == "api_key_not_allowed"


def test_system_service_person_and_credential_access():
    assert refusal(lambda: Fake(ALICE).snapshot()) == "system_only"
    assert refusal(lambda: Fake(None).snapshot()) == "system_only"
    assert Fake(SYSTEM_IDENTITY).snapshot().identity == SYSTEM_IDENTITY
    assert Fake(ALICE).confirm("o9").membership is None            # no membership asked
    assert refusal(lambda: Fake(None).confirm("o9")) == "unauthenticated"
    assert Fake(ALICE).mine().identity == ALICE
    assert Fake(None).ping().identity is None


class Keyed:
    name = "keyed"

    def __init__(self):
        self.auth = type("Auth", (), {"identity": ALICE})()
        self.db = STORE

    @command(PERSON, idempotency=OPTIONAL, phases=True)
    def make(self, caller, uow, name, idempotency_key=None):
        return uow.key

    @command(PERSON, idempotency=REQUIRED, phases=True)
    def charge(self, caller, uow, amount, idempotency_key):
        return uow.key


def test_an_idempotency_key_is_checked_before_the_method_and_handed_to_it():
    assert Keyed().make("x") is None and Keyed().make("x", "") is None and Keyed().make("x", "k1") == "k1"
    assert Keyed().charge("1", idempotency_key="k2") == "k2"
    for call, code in ((lambda: Keyed().charge("1", None), "idempotency_key_required"),
                       (lambda: Keyed().charge("1", ""), "idempotency_key_required"),
                       (lambda: Keyed().make("x", "k" * 201), "invalid_idempotency_key"),
                       (lambda: Keyed().make("x", "a\nb"), "invalid_idempotency_key")):
        with pytest.raises(BadRequest) as refused:
            call()
        assert (refused.value.code, refused.value.field) == (code, "Idempotency-Key")
    with pytest.raises(TypeError):                     # a key argument goes with a declaration, and back
        command(PERSON)(lambda self, caller, session, idempotency_key=None: None)
    with pytest.raises(TypeError):
        command(PERSON, idempotency=OPTIONAL)(lambda self, caller, session: None)


def test_a_declaration_needs_a_caller_parameter_and_an_organization_to_check():
    with pytest.raises(TypeError):
        command(MEMBER)(lambda self, session, organization_id: None)
    with pytest.raises(TypeError):
        command(Action.RENAME_ORGANIZATION)(lambda self, caller, session, name: None)


def test_a_command_takes_its_session_or_its_unit_of_work_after_the_caller():
    with pytest.raises(TypeError):                     # written the old way: no transaction given
        command(PERSON)(lambda self, caller, name: None)
    with pytest.raises(TypeError):
        command(PERSON, phases=True)(lambda self, caller, session: None)
    command(PERSON)(lambda self, caller, session: None)
    command(PERSON, phases=True)(lambda self, caller, uow: None)
    query(PERSON)(lambda self, caller: None)


def test_an_undeclared_rpc_method_answers_nobody():
    class Service:
        name = "undeclared"

        @rpc.rpc
        def add(self, a, b=1):
            return a + b

    container = ServiceContainer(Service, {"AMQP_URI": "memory://"})
    entrypoint = get_extension(container, rpc.Rpc, method_name="add")
    with pytest.raises(Forbidden) as refused:
        entrypoint.check_signature((1,), {})
    assert refused.value.code == "undeclared_method"


def test_a_service_method_runs_the_pipeline_under_worker_factory(make_store):
    service = worker_factory(CreditsService, db=make_store("credits"))
    service.auth.identity = None
    with pytest.raises(Unauthenticated):
        service.get_credits("o1")
