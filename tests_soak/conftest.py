"""Soak tests: long, or disruptive for everyone sharing the services (a PostgreSQL restart).

Not collected by the default `pytest` (`testpaths = ["tests"]`); `make soak` runs them with
`EPOA_SOAK=1`, which they require. The fixtures are those of `tests/`."""

from __future__ import annotations

from tests.conftest import people  # noqa: F401
from tests.support.kafka_fixtures import fresh_group_id, kafka_broker  # noqa: F401
