"""The examples' tests run against a real authsvc: the fixtures of tests/conftest.py."""

from tests.conftest import *  # noqa: F403 (fixtures: database_url, app, server, clock, user, …)
