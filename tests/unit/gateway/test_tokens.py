"""The bearer token rules of SPEC §10, on signed tokens: exp required and a number; sub, email and name
printable strings; sub never `system` nor `key:…`; the email in its canonical form, refused when written
with compatibility characters. Every refusal is a 401 invalid_token naming the claim, never a 500."""
import base64
import hashlib
import hmac
import sys
import time

import jwt
import pytest

from common.auth import Identity
from common.errors import Unauthenticated
from gateway import tokens


def in_a_day():
    return int(time.time()) + 24 * 3600
KELVIN_SIGN = "\u212a"


def signed(**claims):
    """A correctly signed token of exactly these claims (None drops a claim; a callable is called now, so
    an expiry is made when the test runs, never when the module is collected)."""
    claims = {name: value() if callable(value) else value
              for name, value in dict({"sub": "u1", "email": "u1@example.com", "name": "U One",
                                       "exp": in_a_day}, **claims).items() if value is not None}
    return "Bearer " + jwt.encode(claims, tokens.secret(), algorithm=tokens.ALGORITHM)


def refusal(header):
    with pytest.raises(Unauthenticated) as err:
        tokens.identity_from_header(header)
    return err.value.code, err.value.field


@pytest.mark.parametrize("claims, field", [
    ({"exp": None}, "exp"),                                  # accepted forever before
    ({"exp": lambda: str(in_a_day())}, "exp"),              # a string of digits was accepted
    ({"exp": lambda: [in_a_day()]}, None),
    ({"sub": None}, "sub"),
    ({"sub": 5}, "sub"),
    ({"sub": ""}, "sub"),
    ({"sub": "u" * 129}, "sub"),
    ({"sub": "\ud800"}, "sub"),                              # a lone surrogate: a 500 before
    ({"sub": "u\x001"}, "sub"),
    ({"sub": "u\t1"}, "sub"),
    ({"sub": "system"}, "sub"),                              # would be audited as the platform
    ({"sub": "key:k1"}, "sub"),                              # would be audited as an API key
    # Look-alikes of the reserved subjects, all accepted before (issue 25): case, spaces, full-width
    # letters and colon, Cyrillic letters, a Greek kappa.
    ({"sub": "System"}, "sub"),
    ({"sub": " system"}, "sub"),
    ({"sub": "SYSTEM "}, "sub"),
    ({"sub": "KEY:x"}, "sub"),
    ({"sub": "key\uff1ax"}, "sub"),                          # key：x
    ({"sub": "\u0455ystem"}, "sub"),                         # ѕystem, a Cyrillic dze
    ({"sub": "\uff53\uff59\uff53\uff54\uff45\uff4d"}, "sub"),  # ｓｙｓｔｅｍ
    ({"sub": "\u0455\u0443\u0455\u0442\u0435\u043c"}, "sub"),  # all Cyrillic
    ({"sub": "\u03baey:x"}, "sub"),                          # κey:x
    ({"exp": lambda: 10 ** 30}, "exp"),                      # never expires: accepted before
    ({"exp": lambda: in_a_day() + 3600}, "exp"),             # beyond JWT_MAX_TOKEN_AGE (24 h)
    ({"email": None}, "email"),
    ({"email": 5}, "email"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "\ud800@example.com"}, "email"),
    ({"email": "u1\x00@example.com"}, "email"),
    ({"email": "u1\u200b@example.com"}, "email"),            # an invisible zero-width space
    ({"email": KELVIN_SIGN + "im@example.com"}, "email"),    # lower-cases onto kim@example.com
    ({"email": "\uff4bim@example.com"}, "email"),            # a full-width k
    ({"email": "\ufb01n@example.com"}, "email"),             # the ligature fi
    ({"email": "e\u0301@example.com"}, "email"),             # é, decomposed
    ({"email": "u" * 310 + "@example.com"}, "email"),
    ({"name": "\ud800"}, "name"),
    ({"name": "U\nOne"}, "name"),
    ({"name": "U" * 201}, "name"),
    ({"name": 5}, "name"),
])
def test_a_token_breaking_a_claim_rule_is_a_401_naming_the_claim(claims, field):
    assert refusal(signed(**claims)) == ("invalid_token", field)


@pytest.mark.parametrize("claims, identity", [
    ({"email": "Kim@Example.COM"}, Identity("u1", "kim@example.com", "U One")),
    ({"email": "Straße@Example.de"}, Identity("u1", "strasse@example.de", "U One")),   # case-folded
    ({"email": " élodie@example.fr ", "name": None}, Identity("u1", "élodie@example.fr", "")),
    ({"sub": "Ünïcode user 1", "name": "  Ünïcode  "}, Identity("Ünïcode user 1", "u1@example.com", "Ünïcode")),
    ({"sub": "systems", "exp": lambda: in_a_day() + 0.5}, Identity("systems", "u1@example.com", "U One")),
])
def test_a_valid_token_names_its_identity_with_the_canonical_email(claims, identity):
    assert tokens.identity_from_header(signed(**claims)) == identity


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def crafted(header, payload):
    """A token signed with the right secret around any bytes."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = hmac.new(tokens.secret().encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"Bearer {signing_input}.{_b64(signature)}"


HEADER = b'{"alg":"HS256","typ":"JWT"}'
CLAIMS = b'"sub":"u1","email":"u1@example.com"'


@pytest.mark.parametrize("header", [
    crafted(b"[" * 5000 + b"]" * 5000, b"{}"),
    crafted(HEADER, b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"),
    crafted(HEADER, b"\xff\xfe"),
    crafted(HEADER, b"[1]"),
    crafted(HEADER, b"{" + CLAIMS + b',"exp":1e999}'),
    crafted(HEADER, b"{" + CLAIMS + b',"exp":NaN}'),
    crafted(HEADER, b"{" + CLAIMS + b',"exp":' + b"9" * 5000 + b"}"),
    crafted(HEADER, b"{" + CLAIMS + b',"exp":9999999999,"iat":1e999}'),
    crafted(b'{"alg":"none"}', b"{" + CLAIMS + b',"exp":9999999999}'),
    "Bearer " + "x" * 100000,
    "Bearer ....",
])
def test_a_crafted_token_is_a_401_never_an_error(header):
    assert refusal(header)[0] == "invalid_token"


def test_make_token_mints_a_token_the_gateway_accepts(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tokens", "--sub", "alice", "--email", "Alice@Example.com", "--name", "Alice"])
    tokens.main()
    token = capsys.readouterr().out.strip()
    assert tokens.identity_from_header(f"Bearer {token}") == Identity("alice", "alice@example.com", "Alice")
    assert jwt.decode(token, tokens.secret(), algorithms=[tokens.ALGORITHM])["exp"] > time.time()
