"""Shared fixtures: real services (tests/fixtures_services.py)."""

pytest_plugins = ["tests.fixtures_services"]
