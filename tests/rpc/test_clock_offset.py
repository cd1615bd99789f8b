"""A replica knows how far its clock is off the database's: it refuses to start beyond
the leeway, and a running worker exports the offset and says so in its log."""

from __future__ import annotations

import logging
import time

import asyncpg
import pytest
from prometheus_client import REGISTRY

from authsvc.clock import FakeClock
from authsvc.errors import ConfigError
from authsvc.runtime.app import running_app
from authsvc.runtime.startup import check_clock

from ..helpers import eventually


@pytest.mark.parametrize("offset", [-45.0, 45.0])
async def test_start_up_is_refused_beyond_the_leeway(database_url, offset):
    """A host clock 45 s off the database's (leeway 30 s) stops start-up with a message
    naming the offset and the setting."""
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(ConfigError) as refused:
            await check_clock(conn, 30, FakeClock(time.time() + offset))
        await check_clock(conn, 30, FakeClock(time.time() + offset / 3))  # within: starts
    finally:
        await conn.close()

    message = str(refused.value)
    measured = float(message.removeprefix("this host's clock is ").split(" s off")[0])
    assert abs(measured - offset) < 5  # the database's clock ran on while it was read
    assert "off the database's, more than AUTHSVC_CLOCK_LEEWAY (30 s)" in message


async def test_a_running_worker_measures_and_reports_its_offset(settings, database_url,
                                                                caplog):
    """The revocation listener's pings read the database's clock: a worker 60 s ahead
    knows it within a ping, exports it, and logs one error for it, not one per ping.
    (The injected clock stands still while the database's runs, so each ping measures
    a little less: that is how the test knows several pings went by.)"""
    caplog.set_level(logging.WARNING, logger="authsvc.store.listener")
    async with running_app(settings, database_url, FakeClock(time.time() + 60)) as app:
        await eventually(lambda: app.listener.clock_offset > 50, 10, "a measured offset")
        first = app.listener.clock_offset
        await eventually(lambda: app.listener.clock_offset < first - 2.5, 20,
                         "three more pings")
        await eventually(lambda: REGISTRY.get_sample_value(
            "authsvc_clock_offset_seconds") is not None and REGISTRY.get_sample_value(
            "authsvc_clock_offset_seconds") > 40, 10, "the exported gauge")

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert 55 < first <= 61
    assert len(errors) == 1 and "clock leeway" in errors[0].getMessage()
