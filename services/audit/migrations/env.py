"""Alembic environment of the audit service (see common.migrate)."""
from common.migrate import run_env
from services.audit.models import Base

run_env(Base.metadata)
