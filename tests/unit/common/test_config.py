"""Settings come from one place (common.config) with working defaults, and a bad value is a clear
error naming the variable; the broker script refuses ports it cannot use before starting anything."""
import socket
import subprocess
from pathlib import Path

import pytest

from common.config import DEV_JWT_SECRET, ConfigError, nameko_config, settings

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_work_for_a_local_run(tmp_path):
    config = settings({"DATA_DIR": str(tmp_path)})
    assert (config.gateway_port, config.rabbitmq_port, config.max_workers) == (8000, 5672, 10)
    assert config.amqp_uri == "amqp://guest:guest@127.0.0.1:5672/" and not config.amqp_uri_given
    assert config.jwt_secret == DEV_JWT_SECRET
    assert config.app_url == "http://127.0.0.1:8000"
    assert config.smtp.host is None and config.smtp.port == 587 and config.smtp.starttls
    assert config.database_url("orgs") == f"sqlite:///{tmp_path / 'orgs.sqlite'}"
    assert config.sqlite_synchronous == "NORMAL"
    assert (config.jwt_jwks, config.jwt_issuer, config.jwt_audience) == (None, None, None)
    assert not config.jwt_secret_given
    assert config.jwks_cache_seconds == 300.0 and config.cors_allowed_origins == ()


def test_a_process_reads_its_settings_once(environment):
    first = settings()
    assert settings() is first
    with pytest.MonkeyPatch.context() as bare:
        bare.setenv("GATEWAY_PORT", "8125")
        assert settings() is first                       # a change of the environment needs a restart ...
    environment.set(GATEWAY_PORT="8123")                 # ... or, in a test, the environment fixture
    assert settings() is not first and settings().gateway_port == 8123
    assert settings({"GATEWAY_PORT": "8124"}).gateway_port == 8124     # a started process's: read every time
    assert settings().gateway_port == 8123


def test_values_from_the_environment():
    config = settings({"GATEWAY_PORT": "8100", "RABBITMQ_PORT": "5700", "INVITATION_SWEEP_SECONDS": "1",
                       "CREDITS_DATABASE_URL": "postgresql+psycopg2://u@h/credits", "SMTP_STARTTLS": "no"})
    assert config.amqp_uri == "amqp://guest:guest@127.0.0.1:5700/"
    assert config.app_url == "http://127.0.0.1:8100"
    assert config.invitation_sweep_seconds == 1.0
    assert config.database_url("credits") == "postgresql+psycopg2://u@h/credits"
    assert not config.smtp.starttls
    assert settings({"AMQP_URI": "amqp://x@broker:5672/"}).amqp_uri_given
    assert settings({"SQLITE_SYNCHRONOUS": "full"}).sqlite_synchronous == "FULL"


def test_nameko_is_configured_from_the_settings():
    config = nameko_config(settings({"AMQP_URI": "amqp://u:p@broker:5672/", "GATEWAY_PORT": "8100",
                                     "MAX_WORKERS": "4", "LOG_LEVEL": "WARNING"}))
    assert {name: value for name, value in config.items() if name != "LOGGING"} == {
        "AMQP_URI": "amqp://u:p@broker:5672/", "WEB_SERVER_ADDRESS": "0.0.0.0:8100", "max_workers": 4,
        "parent_calls_tracked": 10}
    assert config["LOGGING"]["root"] == {"level": "WARNING", "handlers": ["console"]}
    assert nameko_config(settings({}))["AMQP_URI"] == "amqp://guest:guest@127.0.0.1:5672/"
    assert nameko_config(settings({"WEB_SERVER_ADDRESS": "127.0.0.1:9000"}))["WEB_SERVER_ADDRESS"] == "127.0.0.1:9000"


@pytest.mark.parametrize("name, value", [("GATEWAY_PORT", "abc"), ("MAX_WORKERS", "0"),
                                         ("CREDIT_EXPIRY_SWEEP_SECONDS", "soon"), ("SMTP_PORT", "1.5"),
                                         ("SQLITE_SYNCHRONOUS", "OFF")])
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        settings({name: value})


def test_identity_provider_and_cors_settings():
    config = settings({"JWT_JWKS": "https://idp.example.com/jwks.json", "JWT_ISSUER": "https://idp.example.com/",
                       "JWT_AUDIENCE": "platform", "JWKS_CACHE_SECONDS": "60", "JWT_SECRET": "s",
                       "CORS_ALLOWED_ORIGINS": " https://app.example.com, http://localhost:5173 ,, *"})
    assert (config.jwt_jwks, config.jwt_issuer, config.jwt_audience) == (
        "https://idp.example.com/jwks.json", "https://idp.example.com/", "platform")
    assert config.jwks_cache_seconds == 60.0 and config.jwt_secret_given
    assert config.cors_allowed_origins == ("https://app.example.com", "http://localhost:5173", "*")
    assert settings({"JWT_JWKS": "/etc/idp/jwks.json", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}).jwt_jwks == \
        "/etc/idp/jwks.json"


@pytest.mark.parametrize("environ, name", [
    ({"JWT_JWKS": "https://idp.example.com/jwks.json", "JWT_ISSUER": "i"}, "JWT_AUDIENCE"),
    ({"JWT_JWKS": "/etc/idp/jwks.json", "JWT_AUDIENCE": "a"}, "JWT_ISSUER"),
    ({"JWT_JWKS": "ftp://idp.example.com/jwks.json", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}, "JWT_JWKS"),
    ({"JWKS_CACHE_SECONDS": "0"}, "JWKS_CACHE_SECONDS"),
    ({"CORS_ALLOWED_ORIGINS": "https://app.example.com/"}, "CORS_ALLOWED_ORIGINS"),
    ({"CORS_ALLOWED_ORIGINS": "app.example.com"}, "CORS_ALLOWED_ORIGINS"),
    ({"CORS_ALLOWED_ORIGINS": "https://app.example.com/path"}, "CORS_ALLOWED_ORIGINS"),
    ({"CORS_ALLOWED_ORIGINS": "https://*.example.com"}, "CORS_ALLOWED_ORIGINS"),   # no patterns
])
def test_identity_provider_and_cors_settings_that_cannot_be_used(environ, name):
    with pytest.raises(ConfigError, match=name):
        settings(environ)


def start_broker(tmp_path, port):
    return subprocess.run(["bash", str(ROOT / "scripts/rabbitmq.sh"), "start", str(tmp_path / "rabbit"), str(port)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("port", ["45536", "0", "abc"])
def test_the_broker_script_refuses_a_port_out_of_range(tmp_path, port):
    result = start_broker(tmp_path, port)
    assert result.returncode == 1
    assert "RABBITMQ_PORT must be a number from 1 to 45535" in result.stderr
    assert not (tmp_path / "rabbit" / "rabbitmq.pid").exists()


def test_the_broker_script_refuses_a_taken_distribution_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        dist_port = taken.getsockname()[1]
        if dist_port <= 20000:
            pytest.skip("the free port the system gave has no AMQP twin below it")
        result = start_broker(tmp_path, dist_port - 20000)
    assert result.returncode == 1
    assert "distribution port (RABBITMQ_PORT + 20000)" in result.stderr and str(dist_port) in result.stderr


def test_sqlite_commits_are_synced_as_configured(tmp_path, environment):
    from sqlalchemy import text

    from common.db import Store
    for setting, level in (("NORMAL", 1), ("FULL", 2)):
        environment.set(SQLITE_SYNCHRONOUS=setting)
        with Store(f"sqlite:///{tmp_path / setting}.sqlite").read() as session:
            assert session.execute(text("PRAGMA synchronous")).scalar() == level


def test_a_cluster_of_broker_nodes_is_named_in_the_amqp_uri_and_gets_quorum_queues():
    one = settings({"RABBITMQ_PORT": "5700"})
    assert one.amqp_uri == "amqp://guest:guest@127.0.0.1:5700/" and one.broker.queue_type == "classic"
    three = settings({"RABBITMQ_PORT": "5700", "BROKER_NODES": "3"})
    assert three.amqp_uri.split(";") == [f"amqp://guest:guest@127.0.0.1:{port}/" for port in (5700, 5701, 5702)]
    assert (three.broker.hosts, three.broker.queue_type, three.broker.delivery_limit) == (3, "quorum", 20)
    given = settings({"AMQP_URI": "amqp://u:p@a:5672/;amqp://u:p@b:5672/", "BROKER_QUEUE_TYPE": "classic"})
    assert given.amqp_uri_given and given.broker.hosts == 2 and given.broker.queue_type == "classic"


@pytest.mark.parametrize("name, value", [("BROKER_NODES", "8"), ("BROKER_NODES", "0"),
                                         ("BROKER_QUEUE_TYPE", "stream"), ("BROKER_DELIVERY_LIMIT", "0")])
def test_broker_settings_that_cannot_be_used(name, value):
    with pytest.raises(ConfigError, match=name):
        settings({name: value})
