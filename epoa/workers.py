"""The process roles besides the API: projection worker, consumer, person import."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from epoa.settings import Settings
from epoa.wiring import build_registry

log = logging.getLogger("epoa")


def stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT set the event: the worker finishes what it holds, then exits."""
    stop = threading.Event()

    def handler(signum: int, _: object) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_projections(settings: Settings, rebuild: bool = False, once: bool = False) -> int:
    """The read models and the global audit log (`--rebuild` leaves signed history alone)."""
    from epoa.audit_worker import checkpoint_log, require_appendable_witness, start_checkpoint_log
    from projections.rebuild import RebuildSpaceError
    from projections.runner import ProjectionLockedError, ProjectionRunner

    if not rebuild:  # before the store is opened: a rebuild signs no checkpoint
        require_appendable_witness(settings)
    registry = build_registry(settings)
    try:
        with ProjectionRunner(registry, settings.database_url) as runner:
            if rebuild:
                try:
                    print(f"rebuilt the read models from {runner.rebuild()} events")
                except ProjectionLockedError as error:
                    print(
                        f"epoa: {error}: stop it (`epoa project`, or an `epoa serve` that runs "
                        "the read models in-process, without --no-projections) and try again; "
                        "nothing was changed",
                        file=sys.stderr,
                    )
                    return 1
                except RebuildSpaceError as error:
                    print(f"epoa: {error}; nothing was changed", file=sys.stderr)
                    return 2
            elif once:
                with checkpoint_log(settings, registry) as log:
                    log.catch_up()
                print(f"applied {runner.catch_up()} events; position {runner.position()}")
            else:
                stop = stop_on_signals()
                running = start_checkpoint_log(settings, registry)
                try:
                    runner.run_forever(stop)
                finally:
                    running.close()
    finally:
        registry.close()
    return 0


def import_persons(settings: Settings, path: Path) -> int:
    from projections.db import connect
    from projections.persons import PersonsImportError, create_table, import_csv

    db = connect(settings.database_url)
    try:
        create_table(db)
        count = import_csv(db, path)
    except PersonsImportError as error:
        for line, message in error.problems:
            print(f"{path}:{line}: {message}", file=sys.stderr)
        if error.count > len(error.problems):
            print(f"{path}: and {error.count - len(error.problems)} more", file=sys.stderr)
        print(f"nothing imported: {error.count} bad row(s)", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"imported {count} person(s) from {path}")
    return 0


def run_consumer(settings: Settings) -> int:
    from consumers.kafka_loop import main

    return main(settings, metrics_port=settings.consumer_metrics_port)
