"""An API key as a caller (common.auth, common.authz; SPEC §9): its identity travels in context data like a
person's, and it may act only in its organization (404 elsewhere) within its scopes (403 otherwise)."""
from types import SimpleNamespace

import pytest

from common.auth import AuthContext, Identity, context_data
from common.authz import check_key_allowed
from common.errors import Forbidden, NotFound

KEY = Identity("key:abc123", "", "Runtime", key_organization_id="org-1", key_scopes=("usage:read", "audit:read"))


def test_a_key_identity_travels_in_context_data_and_comes_back_whole():
    data = context_data(KEY)
    assert data["api_key_scopes"] == "usage:read,audit:read" and "user_email" not in data
    assert AuthContext(SimpleNamespace(data=data)).identity == KEY
    assert KEY.as_actor() == {"id": "key:abc123", "name": "Runtime"}


def test_a_key_id_without_its_organization_is_no_key():
    identity = AuthContext(SimpleNamespace(data={"user_id": "key:abc123", "user_name": "x"})).identity
    assert not identity.is_key       # then a member nowhere: every service answers 404


def test_a_key_acts_only_in_its_organization_and_within_its_scopes():
    check_key_allowed(KEY, "org-1", "usage:read")
    with pytest.raises(NotFound) as elsewhere:
        check_key_allowed(KEY, "org-2", "usage:read")
    assert elsewhere.value.code == "organization_not_found"
    with pytest.raises(Forbidden) as outside:
        check_key_allowed(KEY, "org-1", "usage:write")
    assert outside.value.code == "api_key_scope_missing"
    with pytest.raises(Forbidden) as never:
        check_key_allowed(KEY, "org-1")
    assert never.value.code == "api_key_not_allowed"
