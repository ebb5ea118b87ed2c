"""Settings: the only reader of the environment (prefix `EPOA_`)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, quote, urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.iin import is_valid_iin_bin

PathList = Annotated[list[Path], NoDecode]
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
BROKER = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?"
)
"""`host[:port]` (an IPv6 host in brackets), as kafka-python reads a bootstrap server."""
STORE_URL_EXPECTED = "must be sqlite:///PATH or postgresql://user@host:port/db"
MAX_SECONDS = threading.TIMEOUT_MAX
"""The longest wait a thread can be given (about 292 years): a number of seconds beyond
it (`inf`, `1e308`) no process can wait for or count with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOA_", extra="ignore")

    env: Literal["development", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = "sqlite:///var/epoa.sqlite"
    kafka_bootstrap: str | None = None
    case_events_topic: str = "court.case-events"
    case_events_dlq_topic: str = ""
    """Unset: the case-events topic's name and `.dlq` (`court.case-events.dlq`)."""
    consumer_group: str = "epoa-case-events"
    consumer_session_timeout_ms: int = Field(default=6000, ge=1)
    consumer_heartbeat_interval_ms: int = Field(default=1000, ge=1)
    consumer_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    group_commit: bool = True
    """On PostgreSQL, concurrent commands share one transaction (each still atomic)."""
    checkpoint_origin: str = "epoa/registry"
    """The name of the global audit log in its signed checkpoints; never change it later."""
    checkpoint_every_records: int = Field(default=1000, ge=1)
    checkpoint_every_seconds: float = Field(default=10.0, gt=0, le=MAX_SECONDS)
    checkpoint_file: Path | None = None
    """Append every signed checkpoint here too: a witness the database admins cannot rewrite."""
    trusted_ca: Path | None = None
    crl_files: PathList = Field(default_factory=list)
    court_bins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """The BINs of the court systems whose signatures may record case events; unset: any
    organisation's certificate from a trusted CA."""
    seal_key: Path | None = None
    retired_seal_keys: PathList = Field(default_factory=list)
    api_keys: Path | None = None
    clock_skew_seconds: int = Field(default=300, ge=0)
    read_wait_seconds: float = Field(default=2.0, ge=0, le=MAX_SECONDS)
    read_pool_size: int = Field(default=8, ge=1)
    """On PostgreSQL, the API's connections for reads, at most (one process)."""
    log_format: Literal["json", "text"] | None = None
    """Unset: `json` in production, `text` in development."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    database_password_file: Path | None = None
    """The password of `database_url`'s user, kept out of the URL (a container secret)."""
    admin_database_url: str | None = None
    """The schema owner's URL, used only by `epoa db init`."""
    admin_database_password_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        """`EPOA_API_KEYS=` (a variable a compose file or a shell script left empty) is
        unset, not the path `.` nor a URL that is no store: every path or optional setting
        given an empty value takes its default."""
        if not isinstance(data, dict):
            return data
        return {
            name: value
            for name, value in data.items()
            if not (
                isinstance(value, str)
                and not value.strip()
                and name in cls.model_fields
                and _path_or_optional(cls.model_fields[name].annotation)
            )
        }

    @field_validator("crl_files", "retired_seal_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url", "admin_database_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        """Only the stores there are: anything else would reach the PostgreSQL driver as a
        connection string and come back as a store that refuses. The value is never
        repeated: a URL that does not parse may still hold a password where none is looked
        for."""
        if value is None:
            return value
        if not is_store_url(value):
            raise ValueError(STORE_URL_EXPECTED)
        problem = store_url_parameters_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("court_bins", mode="before")
    @classmethod
    def _bins(cls, value: object) -> object:
        listed = cls._comma_separated(value)
        if isinstance(listed, list):
            bad = [bin_ for bin_ in listed if not is_valid_iin_bin(str(bin_))]
            if bad:
                raise ValueError(f"not BINs (12 digits with their check digit): {bad}")
        return listed

    @field_validator("case_events_topic", "case_events_dlq_topic")
    @classmethod
    def _topic(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "case_events_dlq_topic" and not value:
            return value  # made from the case-events topic below
        if not KAFKA_TOPIC.fullmatch(value):
            raise ValueError(
                f"{value!r} is no Kafka topic name: 1 to 249 of letters, digits, '.', '_', '-'"
            )
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        bad = [part for part in value.split(",") if not BROKER.fullmatch(part.strip())]
        if bad:
            raise ValueError(f"host[:port][,host[:port]...] expected, not {bad}")
        ports = [part.strip().rpartition(":") for part in value.split(",")]
        wrong = [port for _, colon, port in ports if colon and port.isdigit()]
        wrong = [port for port in wrong if not 1 <= int(port) <= 65535]
        if wrong:  # kafka-python would look the address up forever
            raise ValueError(f"a broker's port is 1 to 65535, not {wrong}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _dead_letters_beside_their_topic(self) -> Settings:
        if not self.case_events_dlq_topic:
            self.case_events_dlq_topic = f"{self.case_events_topic}.dlq"
        if self.case_events_dlq_topic == self.case_events_topic:
            # Each dead letter would come back as a case event, to be dead-lettered again.
            raise ValueError(
                f"EPOA_CASE_EVENTS_DLQ_TOPIC: {self.case_events_dlq_topic!r} is the topic the "
                "consumer reads (EPOA_CASE_EVENTS_TOPIC): every dead letter would be read "
                "again and dead-lettered again, without end"
            )
        return self

    @model_validator(mode="after")
    def _passwords_from_files(self) -> Settings:
        """Put each password read from its file into its URL, so every reader of
        `database_url` connects alike; a secret file is never part of the environment."""
        if self.database_password_file is not None:
            self.database_url = with_password(
                self.database_url, self.database_password_file, "EPOA_DATABASE_PASSWORD_FILE"
            )
        if self.admin_database_url and self.admin_database_password_file is not None:
            self.admin_database_url = with_password(
                self.admin_database_url,
                self.admin_database_password_file,
                "EPOA_ADMIN_DATABASE_PASSWORD_FILE",
            )
        return self

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.env == "production" else "text"


def _path_or_optional(annotation: object) -> bool:
    """A setting whose type is or holds a `Path` or `None`."""
    if annotation is Path or annotation is type(None):
        return True
    return any(_path_or_optional(arg) for arg in get_args(annotation))


def is_store_url(url: str) -> bool:
    """A URL `epoa.storage` can open: `sqlite:` with a path (`sqlite:///PATH`), or
    `postgresql://` (`postgres://`) with a port that is a number; schemes in any case."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is no number
    except ValueError:
        return False
    if parts.scheme == "sqlite":
        return bool(parts.path.removeprefix("/"))  # as `epoa.storage.sqlite_path` reads it
    return parts.scheme in ("postgresql", "postgres") and url[len(parts.scheme) :].startswith("://")


SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,54}")
"""A schema every statement may name unquoted (the store's library does), and with
`_rebuild` added still within PostgreSQL's 63 characters."""
STORE_URL_PARAMETERS = {"postgresql": ("schema", "pool_size"), "sqlite": ()}


def store_url_parameters_problem(url: str) -> str | None:
    """What is wrong with the query parameters of a store URL, or None. A misspelt one
    (`?shema=`) would otherwise be ignored, and the service would run on another schema's
    store; only the parameters' names are said, never their values."""
    parts = urlsplit(url)
    scheme = "sqlite" if parts.scheme == "sqlite" else "postgresql"
    allowed = STORE_URL_PARAMETERS[scheme]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    unknown = sorted({name for name in names if name not in allowed})
    if unknown:
        takes = ", ".join(allowed) or "none"
        return f"unknown parameter(s) {unknown} (a {scheme} URL takes: {takes})"
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return f"parameter(s) {repeated} given more than once"
    given = dict(pairs)
    if "schema" in given and not SCHEMA_NAME.fullmatch(given["schema"]):
        return (
            "schema must be a plain name: a letter or _, then letters, digits or _, "
            "at most 55 characters (a rebuild adds _rebuild to it)"
        )
    size = given.get("pool_size")
    if size is not None and not (size.isascii() and size.isdigit() and 1 <= int(size) <= 1000):
        return "pool_size must be a whole number from 1 to 1000"
    return None


def with_password(url: str, password_file: Path, variable: str) -> str:
    """`url` with the password `password_file` holds; ValueError naming `variable`. A URL
    that names no user keeps naming none (`postgresql://:password@host/db`): the connection
    takes the default user as before, and `epoa db init` still sees that no service role was
    named, rather than altering a default role it was never given."""
    try:
        password = password_file.read_text().strip()
    except OSError as error:
        raise ValueError(f"{variable}={password_file}: cannot read it: {error}") from error
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}{port}"
    return parts._replace(netloc=netloc).geturl()


def redacted(url: str) -> str:
    """The URL without its password, for logs and banners."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=netloc[0].split(":", 1)[0] + ":***@" + netloc[1]).geturl()
