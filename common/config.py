"""Configuration from environment variables, with working defaults for a local run.

DATA_DIR      SQLite files, broker data and logs (default: ./data)
<SERVICE>_DATABASE_URL   e.g. ORGS_DATABASE_URL=postgresql+psycopg2://...; default: SQLite under DATA_DIR
"""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir(environ=os.environ):
    path = Path(environ.get("DATA_DIR") or PROJECT_ROOT / "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(service_name, environ=os.environ):
    """The service's database; `environ` lets tooling ask on behalf of processes it starts."""
    url = environ.get(f"{service_name.upper()}_DATABASE_URL")
    return url or f"sqlite:///{data_dir(environ) / (service_name + '.sqlite')}"
