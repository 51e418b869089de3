"""Alembic environment of the billing service (see common.migrate)."""
from common.migrate import run_env
from services.billing.models import Base

run_env(Base.metadata)
