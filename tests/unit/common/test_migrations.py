"""Each service's migrations, applied to an empty database, give exactly its models' tables: a model
change without its migration fails here."""
import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from common.config import SERVICES
from common.db import Store
from common.migrate import upgrade


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(tmp_path, service):
    url = f"sqlite:///{tmp_path / service}.sqlite"
    upgrade(service, url)
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    with Store(url).engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
