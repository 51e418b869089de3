"""The gateway's unit tests send many refused credentials from one (absent) address, one per route: each
test gets its own failure counts and no per-address limit to speak of, so no refusal turns a 401 into a
429 (test_rate_limits sets its own small limits)."""
import pytest

from common.config import settings
from gateway import authentication, export
from gateway.rate_limits import RateLimits


@pytest.fixture(autouse=True)
def fresh_rate_limits(monkeypatch):
    rate_limits = RateLimits(settings({"RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS": "100000/minute"}).rate_limits)
    monkeypatch.setattr(authentication, "rate_limits", rate_limits)
    monkeypatch.setattr(export, "rate_limits", rate_limits)
    return rate_limits
