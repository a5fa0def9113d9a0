"""Shared fixtures: real services (tests/fixtures_services.py), and leak attribution."""

import gc
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

pytest_plugins = ["tests.fixtures_services"]

# `make test` (CI) draws the same examples every run: a failure there is a regression,
# never a new random draw. `make chaos` explores: HYPOTHESIS_PROFILE=fuzz, fresh draws.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect garbage when each test ends, so an unclosed socket or file fails the test
    that leaked it (filterwarnings = error) instead of whichever test the collector
    happens to run in later."""
    yield
    gc.collect()
