"""Each process on PostgreSQL says how far its host's clock is from the server's: a warning
at start past a second, and `epoa_clock_offset_seconds` at each scrape of its metrics."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from epoa.clock_offset import METRIC, ClockOffsetCollector, measure, warn_if_off
from tests.support.api import api_settings
from tests.support.people import People

pytestmark = pytest.mark.postgres

CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/epoa_test"


def ahead(seconds: float) -> float:
    return time.time() + seconds


def offset_in(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == METRIC:
            return float(family.samples[0].value)
    raise AssertionError(f"{METRIC} not in the metrics")


def test_a_host_in_step_with_the_server_is_measured_near_zero(postgres_url: str) -> None:
    offset = measure(postgres_url)
    assert abs(offset.seconds) < 0.5
    assert 0 <= offset.uncertainty < 0.5
    assert not offset.beyond(1.0)


def test_a_host_ahead_or_behind_is_measured_by_how_much(postgres_url: str) -> None:
    early = measure(postgres_url, clock=lambda: ahead(5))
    late = measure(postgres_url, clock=lambda: ahead(-7))
    assert 4.5 < early.seconds < 5.5
    assert "ahead of the database server's" in str(early)
    assert -7.5 < late.seconds < -6.5
    assert "7.0" in str(late) and "behind the database server's" in str(late)


def test_the_start_warns_of_a_clock_more_than_a_second_off(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="epoa"):
        warn_if_off(postgres_url)
        assert caplog.records == []
        warn_if_off(postgres_url, clock=lambda: ahead(-3))
    (record,) = caplog.records
    assert "behind the database server's" in record.getMessage()
    assert "NTP" in record.getMessage()


def test_sqlite_and_a_server_that_does_not_answer_give_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="epoa"):
        assert warn_if_off(f"sqlite:///{tmp_path}/x.sqlite", clock=lambda: ahead(60)) is None
        assert warn_if_off(CLOSED_PORT_URL, clock=lambda: ahead(60)) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_scrape_while_the_server_does_not_answer_shows_nan() -> None:
    registry = CollectorRegistry()
    registry.register(ClockOffsetCollector(CLOSED_PORT_URL))
    assert math.isnan(registry.get_sample_value(METRIC) or 0.0)


def test_the_api_metrics_show_the_offset_of_the_clock_it_dates_acts_by(
    postgres_url: str, tmp_path: Path, people: People
) -> None:
    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=30)

    app = create_app(api_settings(postgres_url, tmp_path, people), clock=clock)
    with TestClient(app) as client:
        first = offset_in(client.get("/metrics").text)
        second = offset_in(client.get("/metrics").text)
    assert 29.5 < first < 30.5
    assert 29.5 < second < 30.5


def test_the_api_on_sqlite_shows_no_offset(tmp_path: Path, people: People) -> None:
    settings = api_settings(f"sqlite:///{tmp_path}/epoa.sqlite", tmp_path, people)
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    assert METRIC not in text
