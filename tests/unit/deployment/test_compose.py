"""docker-compose.yml cannot run here (no Docker engine); check what can be checked without one."""
import configparser
import importlib.util
import re
from pathlib import Path

import yaml

from common.config import SERVICES

ROOT = Path(__file__).resolve().parents[3]
BROKERS = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
CLUSTER_CONF = "/etc/rabbitmq/conf.d/20-cluster.conf"


def load_compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_has_every_piece_and_scales():
    compose = load_compose()
    services = compose["services"]
    assert {*BROKERS, "postgres", *SERVICES, "gateway"} <= set(services)
    for name in (*SERVICES, "gateway"):
        spec = services[name]
        assert "container_name" not in spec, "a fixed container name prevents --scale"
        module = [part for part in " ".join(spec["command"]).split() if part.startswith(("services.", "gateway."))][-1]
        assert importlib.util.find_spec(module) is not None, module
        assert spec["restart"] == "unless-stopped"
        assert spec["healthcheck"]["test"][-2:] == ["devtools.healthcheck", name]
        if name != "gateway":
            assert "ports" not in spec
            assert spec["environment"][f"{name.upper()}_DATABASE_URL"].endswith(f"/{name}")
    # The gateway scales behind the edge, which holds the published port (deploy/edge/nginx.conf).
    assert "ports" not in services["gateway"] and services["gateway"]["deploy"]["replicas"]
    assert services["edge"]["ports"] == ["${GATEWAY_PORT:-8000}:8000"]
    edge = (ROOT / "deploy/edge/nginx.conf").read_text()
    assert "proxy_pass http://$gateway;" in edge and "resolver 127.0.0.11" in edge
    init_sql = (ROOT / "deploy/postgres-init.sql").read_text()
    for name in SERVICES:
        assert f"CREATE DATABASE {name}" in init_sql


def cluster_nodes():
    """The nodes deploy/rabbitmq/rabbitmq.conf clusters by classic_config peer discovery."""
    parser = configparser.ConfigParser(delimiters=("=",), comment_prefixes=("#",), interpolation=None)
    parser.optionxform = str
    parser.read_string("[conf]\n" + (ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text())
    conf = dict(parser["conf"])
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    return {value for key, value in conf.items() if key.startswith("cluster_formation.classic_config.nodes.")}


def test_three_broker_nodes_form_one_cluster():
    compose = load_compose()
    services = compose["services"]
    assert sorted(name for name in services if name.startswith("rabbitmq")) == list(BROKERS)
    assert cluster_nodes() == {f"rabbit@{name}" for name in BROKERS}
    volumes = set()
    for name in BROKERS:
        spec = services[name]
        assert spec["image"].startswith("rabbitmq:3."), spec["image"]
        # The node's name is rabbit@<hostname>: fixed, or the node is another (empty) one at each new container.
        assert spec["hostname"] == name
        assert "container_name" not in spec
        assert f"./deploy/rabbitmq/rabbitmq.conf:{CLUSTER_CONF}:ro" in spec["volumes"]
        data = [volume.split(":")[0] for volume in spec["volumes"] if volume.endswith(":/var/lib/rabbitmq")]
        assert len(data) == 1 and data[0] in compose["volumes"], spec["volumes"]
        volumes.add(data[0])
        test = spec["healthcheck"]["test"]
        assert test[:3] == ["CMD", "rabbitmq-diagnostics", "-q"] and test[3] in ("ping", "check_port_connectivity")
    assert len(volumes) == len(BROKERS), "each node keeps its own data"
    # One Erlang cookie for all, the same login on all (the cookie is what lets the nodes talk to each other).
    environments = [services[name]["environment"] for name in BROKERS]
    cookies = {env["RABBITMQ_ERLANG_COOKIE"] for env in environments}
    assert len(cookies) == 1 and cookies.pop().startswith("${RABBITMQ_ERLANG_COOKIE:-")
    assert len({(env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]) for env in environments}) == 1


def test_every_broker_client_names_every_node_and_uses_quorum_queues():
    compose = load_compose()
    services = compose["services"]
    broker_env = services[BROKERS[0]]["environment"]
    login = f"{broker_env['RABBITMQ_DEFAULT_USER']}:{broker_env['RABBITMQ_DEFAULT_PASS']}"
    assert "guest" not in login, "guest may only log in from localhost on RabbitMQ's own configuration"
    clients = [name for name, spec in services.items()
               if any("AMQP" in key or "BROKER" in key for key in spec.get("environment") or {})]
    assert set(clients) == {*SERVICES, "gateway"}
    for name in clients:
        spec = services[name]
        env = spec["environment"]
        uris = env["AMQP_URI"].split(";")
        assert uris == [f"amqp://{login}@{node}:5672/" for node in BROKERS], (name, uris)
        assert env["BROKER_QUEUE_TYPE"] == "quorum", name
        assert re.fullmatch(r"\$\{BROKER_DELIVERY_LIMIT:-\d+\}|\d+", str(env["BROKER_DELIVERY_LIMIT"])), name
        assert {node: {"condition": "service_healthy"} for node in BROKERS}.items() <= spec["depends_on"].items()
    assert services["gateway"]["environment"]["OPERATOR_TOKEN"] == "${OPERATOR_TOKEN:-}"
