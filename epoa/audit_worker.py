"""Runs the global audit log (`projections.checkpoints.CheckpointLog`) beside the API or the
projection worker, from the settings every command reads.

Settings (read with defaults, so this works before they are declared in `Settings`):
`checkpoint_origin` (`EPOA_CHECKPOINT_ORIGIN`), `checkpoint_every_records`,
`checkpoint_every_seconds`, `checkpoint_file` (`EPOA_CHECKPOINT_FILE`: the witness file).
"""

from __future__ import annotations

import threading
from pathlib import Path

from domain.registry import Registry
from epoa.settings import Settings
from epoa.wiring import SettingsError
from projections.checkpoints import CheckpointLog

DEFAULT_ORIGIN = "epoa/registry"
DEFAULT_EVERY_RECORDS = 1000
DEFAULT_EVERY_SECONDS = 10.0


def checkpoint_origin(settings: Settings) -> str:
    return str(getattr(settings, "checkpoint_origin", None) or DEFAULT_ORIGIN)


def checkpoint_file(settings: Settings) -> Path | None:
    value = getattr(settings, "checkpoint_file", None)
    return Path(value) if value else None


def require_appendable_witness(settings: Settings) -> None:
    """Refuse to start a process that signs checkpoints if its witness file cannot take
    them: each append would otherwise fail in turn, logged once per checkpoint, and the
    witness would silently stop. The file is opened as an append opens it (made if absent,
    never truncated)."""
    path = checkpoint_file(settings)
    if path is None:
        return
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise SettingsError(
            f"EPOA_CHECKPOINT_FILE={path} cannot be appended to: {reason}"
        ) from None


def checkpoint_log(settings: Settings, registry: Registry) -> CheckpointLog:
    """The audit log writer over the settings' database, signing with the seal key."""
    require_appendable_witness(settings)
    return CheckpointLog(
        registry,
        settings.database_url,
        checkpoint_origin(settings),
        every_records=int(getattr(settings, "checkpoint_every_records", DEFAULT_EVERY_RECORDS)),
        every_seconds=float(getattr(settings, "checkpoint_every_seconds", DEFAULT_EVERY_SECONDS)),
        witness_file=checkpoint_file(settings),
    )


class RunningCheckpointLog:
    """The audit log following the notification log in a daemon thread until `close()`."""

    def __init__(self, log: CheckpointLog, poll_interval: float = 0.2) -> None:
        self.log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=log.run_forever,
            args=(self._stop, poll_interval),
            name="epoa-checkpoints",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.log.close()


def start_checkpoint_log(
    settings: Settings, registry: Registry, poll_interval: float = 0.2
) -> RunningCheckpointLog:
    """Call from `epoa serve` (lifespan) and `epoa project`; `close()` it on shutdown."""
    return RunningCheckpointLog(checkpoint_log(settings, registry), poll_interval)
