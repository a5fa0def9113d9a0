"""Shared fixtures: real services (tests/fixtures_services.py), and leak attribution."""

import gc
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fixtures_services"]


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect garbage when each test ends, so an unclosed socket or file fails the test
    that leaked it (filterwarnings = error) instead of whichever test the collector
    happens to run in later."""
    yield
    gc.collect()
