"""Settings: the only reader of the environment (prefix `EPOA_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PathList = Annotated[list[Path], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOA_", extra="ignore")

    env: Literal["development", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = "sqlite:///var/epoa.sqlite"
    kafka_bootstrap: str | None = None
    case_events_topic: str = "court.case-events"
    case_events_dlq_topic: str = "court.case-events.dlq"
    consumer_group: str = "epoa-case-events"
    consumer_session_timeout_ms: int = 6000
    consumer_heartbeat_interval_ms: int = 1000
    trusted_ca: Path | None = None
    crl_files: PathList = Field(default_factory=list)
    seal_key: Path | None = None
    retired_seal_keys: PathList = Field(default_factory=list)
    api_keys: Path | None = None
    clock_skew_seconds: int = 300
    read_wait_seconds: float = 2.0

    @field_validator("crl_files", "retired_seal_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
