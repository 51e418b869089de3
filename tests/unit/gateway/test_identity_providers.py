"""Tokens of an identity provider (SPEC §10): RS256 and ES256 JWTs verified against a JWKS that the tests
serve themselves on loopback (or write to a file), with keys they generate: the key the `kid` names, the
configured issuer and audience, the JWKS cached and refreshed at most once per unknown kid burst, and no
algorithm confusion. Every refusal is a 401 with a stable code; a JWKS never read is a 503."""
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from nameko.testing.services import replace_dependencies

from common.auth import Identity
from common.errors import ServiceUnavailable, Unauthenticated
from gateway import authentication, tokens
from gateway.service import GatewayService
from tests.unit.clock import Clock

ISSUER, AUDIENCE = "https://idp.example.com/", "org-platform"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ROTATED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private_key, kid, **extra):
    is_rsa = isinstance(private_key, rsa.RSAPrivateKey)
    algorithm = jwt.algorithms.RSAAlgorithm if is_rsa else jwt.algorithms.ECAlgorithm
    return dict(algorithm.to_jwk(private_key.public_key(), as_dict=True), kid=kid, **extra)


JWKS = {"keys": [public_jwk(RSA_KEY, "rsa-1", use="sig"), public_jwk(EC_KEY, "ec-1"),
                 # Left out: an EC key claiming RS256, a key for encryption, a symmetric key.
                 public_jwk(EC_KEY, "ec-as-rsa", alg="RS256"), public_jwk(RSA_KEY, "rsa-enc", use="enc"),
                 {"kty": "oct", "k": "c2VjcmV0", "kid": "oct-1"}]}


def bearer(key=RSA_KEY, kid="rsa-1", algorithm=None, **claims):
    algorithm = algorithm or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    claims = {name: value for name, value in dict(
        {"sub": "idp-user-1", "email": "Ada@Example.com", "name": "Ada", "iss": ISSUER, "aud": AUDIENCE,
         "exp": int(time.time()) + 600}, **claims).items() if value is not None}
    return "Bearer " + jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def rs256_with_header(header):
    """A token of the usual claims signed by the RSA key under any header."""
    claims = {"sub": "u", "email": "u@example.com", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
    signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(signing_input, RSA_KEY)
    return f"Bearer {signing_input.decode()}.{_b64(signature)}"


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def refusal(header):
    with pytest.raises(Unauthenticated) as err:
        tokens.identity_from_header(header)
    return err.value.status, err.value.code, err.value.field


class JwksServer:
    """A JWKS on loopback: what it serves can change, and it counts the fetches."""

    def __init__(self):
        self.jwks, self.status, self.fetches = JWKS, 200, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = json.dumps(server.jwks).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def idp(monkeypatch, environment):
    """(the JWKS server, the clock of the gateway's JWKS cache), configured as the gateway's provider."""
    server, clock = JwksServer(), Clock()
    environment.set(JWT_JWKS=server.url, JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE, JWKS_CACHE_SECONDS="300")
    environment.unset("JWT_SECRET")
    monkeypatch.setattr(tokens, "_jwks", tokens.JwksKeys(server.url, 300.0, clock=clock))
    yield server, clock
    server.close()


def test_rs256_and_es256_tokens_of_the_provider_are_accepted(idp):
    server, _ = idp
    assert tokens.identity_from_header(bearer()) == Identity("idp-user-1", "ada@example.com", "Ada")
    assert tokens.identity_from_header(bearer(EC_KEY, "ec-1")) == Identity("idp-user-1", "ada@example.com", "Ada")
    assert server.fetches == 1                                       # cached


def test_a_jwks_file_is_read_like_a_url(tmp_path, monkeypatch, environment):
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(JWKS))
    environment.set(JWT_JWKS=str(jwks_file), JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE)
    monkeypatch.setattr(tokens, "_jwks", None)
    assert tokens.identity_from_header(bearer(EC_KEY, "ec-1")).id == "idp-user-1"
    assert tokens.identity_from_header(bearer()).id == "idp-user-1"


# Tokens are made when the test runs (a factory each), never at collection: they carry an exp.
@pytest.mark.parametrize("make_token, field", [
    (lambda: bearer(iss="https://other-idp.example.com/"), "iss"),
    (lambda: bearer(aud="another-app"), "aud"),
    (lambda: bearer(iss=None), "iss"),
    (lambda: bearer(aud=None), "aud"),
    (lambda: bearer(EC_KEY, "rsa-1"), "alg"),                 # ES256 naming the RSA key
    (lambda: bearer(RSA_KEY, "rsa-1", algorithm="RS384"), "alg"),
    (lambda: bearer(RSA_KEY, "rsa-1", algorithm="PS256"), "alg"),
    (lambda: bearer(kid=None), "kid"),
    (lambda: rs256_with_header({"alg": "RS256", "kid": ["rsa-1"]}), None),   # PyJWT refuses a kid that is no string
    (lambda: bearer(EC_KEY, "ec-as-rsa"), "kid"),              # keys the JWKS has but may not be used are unknown
    (lambda: bearer(RSA_KEY, "rsa-enc"), "kid"),
    (lambda: bearer(RSA_KEY, "oct-1"), "kid"),
    (lambda: bearer(sub="system"), "sub"),                     # the claim rules apply to every token
    (lambda: bearer(email=tokens.canonical_email("x@example.com") + "\u200b"), "email"),
    (lambda: bearer(exp=str(int(time.time()) + 600)), "exp"),
    (lambda: bearer(ROTATED_KEY, "rsa-1"), None),              # the kid of a key, signed by another
])
def test_a_provider_token_breaking_a_rule_is_a_401_invalid_token(idp, make_token, field):
    assert refusal(make_token()) == (401, "invalid_token", field)


def test_an_expired_provider_token_is_a_401_token_expired(idp):
    assert refusal(bearer(exp=int(time.time()) - 1)) == (401, "token_expired", None)


def hs256_signed_with(secret, claims):
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'}).encode())}." \
                    f"{_b64(json.dumps(claims).encode())}"
    return f"Bearer {signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


PUBLIC_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)


def confused_claims():
    return {"sub": "mallory", "email": "m@example.com", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}


def test_hs256_signed_with_the_public_key_is_refused(idp, environment):
    # Beside a JWKS, HS256 is not accepted at all unless JWT_SECRET is set ...
    assert refusal(hs256_signed_with(PUBLIC_PEM, confused_claims())) == (401, "invalid_token", "alg")
    # ... and then it is checked against that secret, never against a key of the JWKS.
    environment.set(JWT_SECRET="an-explicit-development-secret")
    assert refusal(hs256_signed_with(PUBLIC_PEM, confused_claims())) == (401, "invalid_token", None)
    jwk_text = json.dumps(JWKS["keys"][0]).encode()
    assert refusal(hs256_signed_with(jwk_text, confused_claims())) == (401, "invalid_token", None)


def test_hs256_beside_a_jwks_only_with_an_explicit_secret(idp, environment):
    development_token = "Bearer " + tokens.mint("dev", "dev@example.com")   # the public default secret
    assert refusal(development_token) == (401, "invalid_token", "alg")
    environment.set(JWT_SECRET="an-explicit-development-secret")
    assert tokens.identity_from_header("Bearer " + tokens.mint("dev", "dev@example.com")).id == "dev"


def test_alg_none_is_refused(idp):
    header = json.dumps({"alg": "none", "kid": "rsa-1"}).encode()
    unsigned = f"{_b64(header)}.{_b64(json.dumps(confused_claims()).encode())}."
    assert refusal("Bearer " + unsigned) == (401, "invalid_token", "alg")


def test_without_a_jwks_provider_tokens_are_refused(environment):
    environment.unset("JWT_JWKS")
    assert refusal(bearer()) == (401, "invalid_token", "alg")


def test_an_unknown_kid_refreshes_the_jwks_once_then_is_refused(idp):
    server, clock = idp
    tokens.identity_from_header(bearer())
    assert refusal(bearer(kid="rsa-unknown")) == (401, "invalid_token", "kid")
    assert server.fetches == 1              # the first read was under 10 s ago: no refresh yet
    clock.now += tokens.JWKS_MIN_REFRESH_SECONDS
    for kid in ("rsa-unknown", "rsa-other", "rsa-third"):
        assert refusal(bearer(kid=kid)) == (401, "invalid_token", "kid")
    assert server.fetches == 2              # one refresh for the burst of made-up kids


def test_a_rotated_key_is_found_by_the_refresh_an_unknown_kid_makes(idp):
    server, clock = idp
    tokens.identity_from_header(bearer())
    server.jwks = {"keys": JWKS["keys"] + [public_jwk(ROTATED_KEY, "rsa-2")]}
    clock.now += tokens.JWKS_MIN_REFRESH_SECONDS
    assert tokens.identity_from_header(bearer(ROTATED_KEY, "rsa-2")).id == "idp-user-1"
    assert server.fetches == 2


def test_the_jwks_is_read_again_once_its_cache_time_is_over(idp):
    server, clock = idp
    tokens.identity_from_header(bearer())
    clock.now += 299
    tokens.identity_from_header(bearer())
    assert server.fetches == 1
    server.jwks = {"keys": [public_jwk(EC_KEY, "ec-1")]}   # rsa-1 withdrawn
    clock.now += 1
    assert refusal(bearer()) == (401, "invalid_token", "kid")
    assert server.fetches == 2


def test_a_jwks_never_read_is_a_503_and_a_stale_one_keeps_working(idp):
    server, clock = idp
    server.status = 500
    with pytest.raises(ServiceUnavailable) as err:
        tokens.identity_from_header(bearer())
    assert (err.value.status, err.value.code) == (503, "identity_provider_unavailable")
    with pytest.raises(ServiceUnavailable):
        tokens.identity_from_header(bearer())
    assert server.fetches == 1              # retried at most every 10 s, not on every request
    server.status = 200
    clock.now += tokens.JWKS_MIN_REFRESH_SECONDS
    assert tokens.identity_from_header(bearer()).id == "idp-user-1"
    server.status, clock.now = 500, clock.now + 300
    assert tokens.identity_from_header(bearer()).id == "idp-user-1"   # the keys read before
    assert server.fetches == 3


@pytest.mark.parametrize("served", ["not json", [1, 2], {"keys": "none"}, "x" * (tokens.JWKS_MAX_BYTES + 1)])
def test_a_jwks_that_is_not_one_is_a_503(idp, served):
    server, _ = idp
    server.jwks = served
    with pytest.raises(ServiceUnavailable):
        tokens.identity_from_header(bearer())


def test_an_unreachable_jwks_is_a_503_within_the_fetch_timeout(idp, monkeypatch):
    server, _ = idp
    server.close()
    monkeypatch.setattr(tokens, "_jwks", tokens.JwksKeys(server.url, 300.0))
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        tokens.identity_from_header(bearer())
    assert time.monotonic() - started < sum(tokens.JWKS_FETCH_TIMEOUT)


def test_the_gateway_refuses_to_start_with_a_jwks_but_no_audience():
    env = {"PATH": "/usr/bin:/bin", "JWT_JWKS": "https://idp.example.com/jwks.json", "JWT_ISSUER": ISSUER}
    result = subprocess.run([sys.executable, "-c", "import gateway.service"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "JWT_AUDIENCE must be set when JWT_JWKS is" in result.stderr


# ---- through a running gateway ----------------------------------------------------------------------------
@pytest.fixture
def gateway(idp, container_factory, web_config, monkeypatch):
    monkeypatch.setattr(authentication, "_signed_in", OrderedDict())
    container = container_factory(GatewayService, dict(web_config, AMQP_URI="memory://"))
    orgs, *_ = replace_dependencies(container, "orgs", "members", "credits", "audit")
    orgs.create_organization.call_async.return_value.result.return_value = {
        "id": "o1", "name": "IdP", "type": "collective", "roles": ["owner"], "member_count": 1}
    container.start()
    return f"http://{web_config['WEB_SERVER_ADDRESS']}", orgs


def test_the_gateway_serves_a_provider_token_and_refuses_a_foreign_one(gateway):
    url, orgs = gateway
    created = requests.post(f"{url}/v1/organizations", json={"name": "IdP"}, headers={"Authorization": bearer()},
                            timeout=5)
    assert created.status_code == 201, created.text
    assert orgs.sign_in.call_async.called
    refused = requests.post(f"{url}/v1/organizations", json={"name": "IdP"}, timeout=5,
                            headers={"Authorization": bearer(aud="another-app")})
    assert (refused.status_code, refused.json()["error"]["code"], refused.json()["error"]["field"]) == \
        (401, "invalid_token", "aud")
    assert orgs.create_organization.call_async.call_count == 1
