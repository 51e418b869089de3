# Nameko runs on eventlet: patch before anything else is imported (or in-process containers hang).
import eventlet

eventlet.monkey_patch()  # noqa: E402

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from common.config import SERVICES, reload_settings
from devtools.postgres import PostgresCluster
from devtools.system import Broker, System, free_broker_port, free_port
from gateway import tokens

# One gateway process per test system (make run's default is one per core): the gateway's memory is per
# process (rate limits, keys kept a minute), and the tests that count on it talk to one. A test of several
# starts the others itself (tests/faults/test_gateway_stopped.py).
os.environ.setdefault("GATEWAY_PROCESSES", "1")


# ---- two lanes at once (make test) -----------------------------------------------------------------------
# make test runs the suite as two pytest processes side by side (scripts/test.sh), each with its own broker
# and systems: the suite mostly waits (for processes, time-outs, a browser), so two lanes use the two cores.
# `--lane postgres` takes every test run on PostgreSQL, the unit tests and the tests that start a broker of
# their own (about even with the other lane: 10-11 minutes each on 2 cores); `--lane others` the rest.
# Without --lane, one process runs everything, as before.
POSTGRES_LANE_PATHS = ("tests/unit/", "tests/faults/test_broker_cluster.py", "tests/e2e/test_queue_type_change.py")


def pytest_addoption(parser):
    parser.addoption("--lane", choices=("postgres", "others"), default=None,
                     help="one of make test's two lanes: the PostgreSQL tests (and the unit tests...), or the rest")


def in_postgres_lane(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(value == "postgres" for value in params.values() if isinstance(value, str)) or \
        item.nodeid.startswith(POSTGRES_LANE_PATHS)


def pytest_collection_modifyitems(config, items):
    lane = config.getoption("lane")
    if lane is None:
        return
    kept, dropped = [], []
    for item in items:
        (kept if in_postgres_lane(item) == (lane == "postgres") else dropped).append(item)
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


# ---- the environment of this process ------------------------------------------------------------------
class Environment:
    """Environment variables changed for one test, and the settings read again after each change."""

    def __init__(self):
        self._patch = pytest.MonkeyPatch()

    def set(self, **values):
        for name, value in values.items():
            self._patch.setenv(name, value)
        reload_settings()

    def unset(self, *names):
        for name in names:
            self._patch.delenv(name, raising=False)
        reload_settings()

    def undo(self):
        self._patch.undo()
        reload_settings()


@pytest.fixture
def environment():
    """The one way a test changes this process's environment: `environment.set(JWT_SECRET="s")`,
    `environment.unset("JWT_JWKS")`; all of it is put back after the test.

    A process reads its settings once (common.config.settings), so a bare monkeypatch.setenv would go
    unseen; these read them again after every change, as a process started with that environment would."""
    changes = Environment()
    yield changes
    changes.undo()


@pytest.fixture(scope="session")
def broker():
    """A private RabbitMQ node for the whole session, on free ports, stopped at the end."""
    directory = tempfile.mkdtemp(prefix="orgplatform-rabbit-")
    node = Broker(directory, free_broker_port()).start()
    yield node
    node.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


def database_env(backend, request, label):
    """Environment variables giving each service its own, fresh database on `backend`."""
    if backend == "sqlite":
        return {}   # the default: one SQLite file per service under DATA_DIR
    cluster = request.getfixturevalue("postgres")
    suffix = uuid.uuid4().hex[:8]
    return {f"{s.upper()}_DATABASE_URL": cluster.create_database(f"{s}_{label}_{suffix}") for s in SERVICES}


class Api:
    """A signed-in HTTP client of the gateway."""

    def __init__(self, base_url, sub, email, name):
        self.base_url, self.id, self.email, self.name = base_url, sub, email, name
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {tokens.mint(sub, email, name)}"

    def request(self, method, path, **kwargs):
        return self.session.request(method, self.base_url + path, timeout=30, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class RunningSystem(System):
    def user(self, label="user"):
        """A brand-new user (unique id and email) with a client."""
        sub = f"{label}-{uuid.uuid4().hex[:10]}"
        return Api(self.url, sub, f"{sub}@example.com", label.title())


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def system(request, broker, tmp_path_factory):
    """The whole system (every service and the gateway) on a real broker, once per database backend
    for the whole session (pytest runs every SQLite test, then every PostgreSQL one).

    Tests keep apart by using fresh users; a test that stops or kills a service starts it again."""
    backend = request.param
    data_dir = tmp_path_factory.mktemp(f"system-{backend}")
    env = dict(database_env(backend, request, "e2e"), JWT_SECRET=tokens.secret(), INVITATION_SWEEP_SECONDS="1",
               EMAIL_SEND_SECONDS="0.3", CREDIT_EXPIRY_SWEEP_SECONDS="1", LOCALSTRIPE_PORT=str(free_port()),
               BILLING_RECONCILE_SECONDS="1", AUDIT_CHECKPOINT_SECONDS="1",
               # Every test's requests come from 127.0.0.1: its failures are counted per key id and per
               # organization's downloads as in production, not per address (test_rate_limits uses others).
               RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS="100000/minute",
               # Webhooks go to receivers the tests run on loopback, sooner than in production.
               WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true", WEBHOOK_POLL_SECONDS="0.1", WEBHOOK_RETRY_SCALE="0.01",
               WEBHOOK_TIMEOUT_SECONDS="5",
               # The console gives a request up sooner than its 15 s (the frozen-gateway test waits for it).
               CONSOLE_REQUEST_TIMEOUT_SECONDS="6")
    running = RunningSystem(data_dir, broker.amqp_uri, free_port(), env)
    running.backend = backend
    # Consumer queues are shared per broker: empty them so the other backend's leftovers do not leak in.
    _purge_queues(broker)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


def _purge_queues(broker):
    from kombu import Connection

    from common.events import CONSUMER_QUEUES
    with Connection(broker.amqp_uri) as connection:
        channel = connection.channel()
        for queue in CONSUMER_QUEUES:
            queue(channel).declare()
            queue(channel).purge()


# ---- figures: what a test measured, printed at the end of the run ------------------------------------
# Wall-clock figures are reported, not asserted tightly: a test bounds a duration only with a generous
# margin that separates a defect (e.g. waiting for a 10 s RPC time-out, a 60 s cache) from a slow machine,
# and says what it measured here, so CI's output shows the figure beside the benchmarks under bench/.
_FIGURES = []


@pytest.fixture
def figure(request):
    """figure("what was measured") adds a line to the run's closing section "figures measured by tests".
    It travels in the test's report (user_properties), read back by pytest_runtest_logreport below."""
    def record(text):
        request.node.user_properties.append(("figure", text))
    return record


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _FIGURES.extend(f"{report.nodeid}: {text}" for name, text in report.user_properties if name == "figure")


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures measured by tests")
        for line in _FIGURES:
            terminalreporter.write_line(line)


# ---- the clock made to run ahead (scripts/test_clock_ahead.sh) ------------------------------------------
def pytest_collection_finish(session):
    """Under libfaketime with a timestamp file, move every clock of this process and of the processes it
    starts from now on by TEST_CLOCK_JUMP (e.g. +30m) once collection is done: anything a test module made
    at collection time (a token's expiry) is then as old as it would be at the end of a long suite."""
    jump, stamp_file = os.environ.get("TEST_CLOCK_JUMP"), os.environ.get("FAKETIME_TIMESTAMP_FILE")
    if jump and stamp_file:
        Path(stamp_file).write_text(jump + "\n")
        session.config.get_terminal_writer().line(f"clock moved {jump} after collection (libfaketime)")
