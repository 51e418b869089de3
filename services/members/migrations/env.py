"""Alembic environment of the members service (see common.migrate)."""
from common.migrate import run_env
from services.members.models import Base

run_env(Base.metadata)
