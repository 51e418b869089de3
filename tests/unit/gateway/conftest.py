"""The gateway's unit tests send many refused credentials from one (absent) address, one per route: each
test gets its own failure counts and no per-address limit to speak of, so no refusal turns a 401 into a
429 (test_rate_limits sets its own small limits)."""
import pytest

from common.config import settings
from common.framework.replies import OwnQueues
from gateway import authentication, export
from gateway.rate_limits import RateLimits


@pytest.fixture(autouse=True)
def fresh_rate_limits(monkeypatch):
    rate_limits = RateLimits(settings({"RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS": "100000/minute"}).rate_limits)
    monkeypatch.setattr(authentication, "rate_limits", rate_limits)
    monkeypatch.setattr(export, "rate_limits", rate_limits)
    return rate_limits



@pytest.fixture
def container_factory(container_factory):
    """Nameko's, with the gateway's own queues' consumer (API key revocations) stopped at once at the end. On
    memory:// it polls once a second, and upstream's kill waits for that poll to end: a second per test,
    half a minute for the gateway's tests. Nothing is left to close on memory://."""
    made = []

    def make(service_cls, config):
        made.append(container_factory(service_cls, config))
        return made[-1]
    yield make
    for container in made:
        for extension in container.extensions:
            if isinstance(extension, OwnQueues) and extension._gt is not None:
                extension._gt.kill()
