"""Alembic environment of the webhooks service (see common.migrate)."""
from common.migrate import run_env
from services.webhooks.models import Base

run_env(Base.metadata)
