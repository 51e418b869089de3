"""The operations routes take the operator's token (OPERATOR_TOKEN), compared in constant time; none set
refuses everyone."""
from types import SimpleNamespace

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from common.errors import AppError, Forbidden, ServiceUnavailable, Unauthenticated
from devtools.system import free_port
from gateway.routes.operations import OperationRoutes, operator_only


def request(authorization=None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return Request(EnvironBuilder(path="/v1/operations/dead-letters", headers=headers).get_environ())


def test_without_an_operator_token_the_routes_refuse_everything(environment):
    environment.unset("OPERATOR_TOKEN")
    with pytest.raises(Forbidden) as refused:
        operator_only(request("Bearer anything"))
    assert refused.value.code == "operations_disabled" and "OPERATOR_TOKEN" in refused.value.message


@pytest.mark.parametrize("authorization, code", [
    (None, "operator_token_required"), ("Bearer ", "operator_token_required"),
    ("Basic s3cret-operator", "operator_token_required"), ("Bearer s3cret-operatoR", "invalid_operator_token"),
    ("Bearer s3cret", "invalid_operator_token")])
def test_a_missing_or_wrong_token_is_401(environment, authorization, code):
    environment.set(OPERATOR_TOKEN="s3cret-operator")
    with pytest.raises(Unauthenticated) as refused:
        operator_only(request(authorization))
    assert refused.value.code == code


def test_wrong_tokens_count_against_the_address_like_every_refused_credential(environment):
    environment.set(OPERATOR_TOKEN="s3cret-operator")
    guesser = {"REMOTE_ADDR": "198.51.100.77"}
    codes = []
    for n in range(70):
        environ = EnvironBuilder(path="/v1/operations/dead-letters", headers={"Authorization": f"Bearer guess-{n}"},
                                 environ_base=guesser).get_environ()
        with pytest.raises(AppError) as refused:
            operator_only(Request(environ))
        codes.append(refused.value.code)
    assert codes[0] == "invalid_operator_token" and codes[-1] == "too_many_failures"
    assert set(codes) == {"invalid_operator_token", "too_many_failures"}


def test_the_operators_token_passes(environment):
    environment.set(OPERATOR_TOKEN="s3cret-operator")
    operator_only(request("Bearer s3cret-operator"))
    operator_only(request("bearer s3cret-operator"))


def test_a_broker_that_cannot_be_reached_is_503(environment):
    environment.set(OPERATOR_TOKEN="s3cret-operator")
    routes = SimpleNamespace(config={"AMQP_URI": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
    with pytest.raises(ServiceUnavailable) as refused:
        OperationRoutes.dead_letters.__wrapped__(routes, request("Bearer s3cret-operator"))
    assert refused.value.code == "broker_unavailable"
