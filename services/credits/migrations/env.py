"""Alembic environment of the credits service (see common.migrate)."""
from common.migrate import run_env
from services.credits.models import Base

run_env(Base.metadata)
