"""The deployment files without a Docker engine: the compose file is valid for Docker
Compose itself and keeps its promises (no secret inline, least-privilege role, health
checks before dependants start); the Dockerfile is lint-clean, pinned and non-root; the
image's lock agrees with pyproject.toml. Broken copies fail the same checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.compose import COMPOSE, compose_config, needs_linux_x86, run

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
EPOA_SERVICES = ("db-init", "api", "projector", "consumer")


@needs_linux_x86
def test_the_compose_file_is_valid_for_docker_compose() -> None:
    done = run("check-compose.sh", COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_linux_x86
@pytest.mark.parametrize(
    ("change", "replacement"),
    [
        ("condition: service_completed_successfully", "condition: service_finished"),
        ("      retries: 30\n", "      retries: thirty\n"),
        ("    restart: unless-stopped\n", "    restart: unless-stopped\n    colour: blue\n"),
        ("secrets: [db_service_password, seal_key]", "secrets: [db_service_password, seal]"),
        ("        condition: service_healthy\n    restart", "        condition: oops\n    restart"),
        ("  kafka-topics:\n", "  kafka-topics-renamed:\n"),
    ],
)
def test_a_broken_compose_file_fails_validation(
    tmp_path: Path, change: str, replacement: str
) -> None:
    text = COMPOSE.read_text()
    assert change in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(change, replacement, 1))
    done = run("check-compose.sh", broken)
    assert done.returncode != 0, done.stdout
    assert "not a valid compose file" in done.stderr


@needs_linux_x86
def test_the_compose_file_keeps_secrets_out_and_runs_epoa_as_the_service_role() -> None:
    config = compose_config()
    services = config["services"]
    for name in EPOA_SERVICES:
        environment = services[name]["environment"]
        url = urlsplit(environment["EPOA_DATABASE_URL"])
        assert url.username == "epoa_service" and url.password is None
        assert environment["EPOA_ENV"] == "production"
        assert environment["EPOA_DATABASE_PASSWORD_FILE"].startswith("/run/secrets/")
        assert services[name]["read_only"] is True
    assert "EPOA_ADMIN_DATABASE_URL" in services["db-init"]["environment"]
    for name in ("api", "projector", "consumer"):
        assert "EPOA_ADMIN_DATABASE_URL" not in services[name]["environment"]
        assert "db_owner_password" not in [s["source"] for s in services[name]["secrets"]]
        condition = services[name]["depends_on"]["db-init"]["condition"]
        assert condition == "service_completed_successfully"
    assert all("file" in secret for secret in config["secrets"].values())
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            assert not key.endswith(("PASSWORD", "SECRET", "TOKEN")), key
            if key.endswith(("_KEY", "_KEYS", "_CA", "_FILE")) and key != "EPOA_CHECKPOINT_FILE":
                assert value.startswith("/run/secrets/"), key
    text = COMPOSE.read_text()
    assert "HOST_AUTH_METHOD" not in text and "BEGIN" not in text


@needs_linux_x86
def test_the_compose_file_checks_health_before_dependants_start() -> None:
    services = compose_config()["services"]
    for name in ("postgres", "kafka", "api", "consumer"):
        assert services[name]["healthcheck"]["test"], name
    assert services["db-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["lb"]["depends_on"]["api"]["condition"] == "service_healthy"
    topics = " ".join(services["kafka-topics"]["command"])
    assert "court.case-events --partitions" in topics and "court.case-events.dlq" in topics


@needs_linux_x86
def test_the_witness_file_outlives_the_projector_and_the_consumer_is_probed_on_readyz() -> None:
    services = compose_config()["services"]
    witness = Path(services["projector"]["environment"]["EPOA_CHECKPOINT_FILE"])
    mounts = {mount["target"]: mount for mount in services["projector"]["volumes"]}
    assert mounts[str(witness.parent)]["type"] == "volume"
    assert f"-o 10001 -g 10001 -m 0750 {witness.parent}" in DOCKERFILE.read_text()
    port = services["consumer"]["environment"]["EPOA_CONSUMER_METRICS_PORT"]
    probe = " ".join(services["consumer"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in probe


@needs_linux_x86
def test_the_dockerfile_is_lint_clean() -> None:
    done = run("lint-dockerfile.sh", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_linux_x86
def test_a_careless_dockerfile_fails_the_lint(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        DOCKERFILE.read_text().replace("COPY epoa ./epoa", "ADD epoa ./epoa\nRUN cd /src", 1)
    )
    done = run("lint-dockerfile.sh", broken)
    assert done.returncode != 0
    assert "DL3020" in done.stdout


def test_the_image_base_is_pinned_by_digest_and_the_image_runs_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None and re.fullmatch(r"python:[\w.-]+@sha256:[0-9a-f]{64}", base[1])
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert "--require-hashes -r requirements.lock" in text


def test_every_version_pinned_in_pyproject_is_the_one_in_the_lock() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    locked = dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", lock, re.MULTILINE))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        pinned = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^]]*\])?==(\S+)", requirement)
        assert pinned is not None, f"{requirement} is not pinned"
        assert locked.get(pinned[1].lower()) == pinned[2], f"{pinned[1]}: run `make lock`"
    body = [line for line in lock.splitlines() if line and not line.lstrip().startswith("#")]
    assert all("==" in line or "--hash=sha256:" in line for line in body)


@needs_linux_x86
def test_the_runbooks_scale_out_fits_in_the_compose_databases_connections() -> None:
    """Six API replicas (the runbook's example) held more connections at rest than
    PostgreSQL's default of 100 allows: the later replicas could not start."""
    from epoa.async_queries import ASYNC_CONNECTIONS
    from epoa.storage import persistence_env
    from projections.db_pool import READ_POOL_SIZE

    config = compose_config()
    services = config["services"]
    command = services["postgres"]["command"]
    limits = [int(arg.split("=", 1)[1]) for arg in command if arg.startswith("max_connections=")]
    assert limits, command
    env = persistence_env(services["api"]["environment"]["EPOA_DATABASE_URL"])
    store = int(env["POSTGRES_POOL_SIZE"]) + int(env["POSTGRES_MAX_OVERFLOW"])
    others = 8  # the runner's, the wake-up listener's, the writer lock's, a readiness probe...
    api = store + READ_POOL_SIZE + ASYNC_CONNECTIONS + others
    scaled = re.search(r"--scale api=(\d+)", (ROOT / "docs" / "runbook.md").read_text())
    assert scaled is not None
    at_most = int(scaled[1]) * api + 2 * (store + others)  # and the projector, a consumer
    reserved = 3  # PostgreSQL's superuser_reserved_connections
    assert at_most <= limits[0] - reserved, (at_most, limits[0])
