"""A TGI stand-in per test module, configured from the module's ``BASE_SETTINGS`` and reset
before each test of modules that use ``fresh_standin``."""
from collections.abc import Iterator

import pytest

from tests.helpers import eventually
from devstack.tgi_standin import TGIStandIn


@pytest.fixture(scope="module")
def standin(request) -> Iterator[TGIStandIn]:
    with TGIStandIn(**request.module.BASE_SETTINGS) as server:
        yield server


@pytest.fixture
def fresh_standin(standin: TGIStandIn, request) -> Iterator[None]:
    standin.configure(**request.module.BASE_SETTINGS)
    standin.reset()
    yield
    # A request a test left behind must not leak into the next test's counters.
    eventually(lambda: standin.stats()["in_flight"] == 0)
