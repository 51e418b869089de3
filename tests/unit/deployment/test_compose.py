"""docker-compose.yml cannot run here (no Docker engine); check what can be checked without one."""
import importlib.util
from pathlib import Path

import yaml

from common.config import SERVICES

ROOT = Path(__file__).resolve().parents[3]


def test_compose_file_has_every_piece_and_scales():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"rabbitmq", "postgres", *SERVICES, "gateway"} <= set(services)
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
