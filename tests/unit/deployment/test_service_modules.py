"""`python -m devtools.serve <module>` (make run, the compose file, the README) runs, as `nameko run` would,
every class of the module that has entrypoints: each module must hold exactly its one service class (a
mixin imported by name would be picked up too, and refused for having no `name`)."""
import pytest
from nameko.cli.run import import_service

from devtools.system import MODULES


@pytest.mark.parametrize("name, module", MODULES.items())
def test_nameko_run_finds_exactly_the_service(name, module):
    services = import_service(module)
    assert [service.name for service in services] == [name]
