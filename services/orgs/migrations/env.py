"""Alembic environment of the orgs service (see common.migrate)."""
from common.migrate import run_env
from services.orgs.models import Base

run_env(Base.metadata)
