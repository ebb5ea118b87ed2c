"""`epoa serve`: the HTTP API in this process.

Everything that would stop the server is met before it starts, in the order an operator
fixes it: the settings and the store, then the address to listen on. Only then is the
banner shown, so a server that cannot start never prints the address of its docs and its
API keys above the one line that says why.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from epoa.settings import Settings, redacted

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from domain.eds import Verifier

log = logging.getLogger("epoa")

STARTUP_FAILURE = 3
"""uvicorn's exit status for an app whose start-up failed (as `uvicorn.run` exits)."""


class ListenError(Exception):
    """The address cannot be listened on (the message says why)."""


def serve(settings: Settings, host: str, port: int, run_projections: bool) -> int:
    import uvicorn

    from api.app import create_app
    from epoa.dev import banner, ensure_dev_material

    settings, material = ensure_dev_material(settings)
    verifier = preflight(settings, signs_checkpoints=run_projections)
    listener = listen(host, port)
    try:
        shown = settings.model_copy(update={"database_url": redacted(settings.database_url)})
        _show(settings, banner(shown, material, f"http://{_url_host(host)}:{port}"))
        app = create_app(settings, run_projections=run_projections, verifier=verifier)
        # uvicorn logs through the root logger (epoa.logging_setup); the app logs each request.
        config = uvicorn.Config(
            OneLineStartupFailure(app, settings),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            log_config=None,
            access_log=False,
        )
        server = uvicorn.Server(config)
        with _stopping_signals_end_cleanly(server):
            server.run(sockets=[listener])
    finally:
        listener.close()
    return 0 if server.started else STARTUP_FAILURE


@contextmanager
def _stopping_signals_end_cleanly(server: uvicorn.Server) -> Iterator[None]:
    """Once shut down, uvicorn raises the SIGTERM or SIGINT it stopped on again, for the
    handler it found: the default one would end the process by that signal (exit 143 or
    130) after a clean shutdown. It finds one that only asks the server to stop (nothing,
    by then), so `epoa serve` exits 0 as `epoa consume` and `epoa project` do; a signal
    come before uvicorn's own handlers are in place stops it as soon as it has started."""

    def stop(*_: object) -> None:
        server.should_exit = True

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class OneLineStartupFailure:
    """The app, but for a start-up that the store or a setting ends after the banner all the
    same (the store lost meanwhile, or its connections refused once the app opens its pools:
    a role's or the server's connection limit): uvicorn would log the traceback Starlette
    hands it, and gets instead the one line any command would say (`epoa.cli.failure`),
    with the traceback at DEBUG. Any other start-up failure keeps its traceback."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def told(message: Message) -> None:
            error = sys.exc_info()[1]  # Starlette sends it while handling the error
            if message["type"] == "lifespan.startup.failed" and error is not None:
                from epoa.cli import failure

                known = failure(error, self.settings)
                if known is not None:
                    log.debug("start-up failed:\n%s", message.get("message", ""))
                    log.error("%s", known[1])
                    message = {**message, "message": ""}
            await send(message)

        await self.app(scope, receive, told)


def preflight(settings: Settings, signs_checkpoints: bool) -> Verifier:
    """What would stop the app's start-up, met before the server starts, so that it ends as
    every command does (one line; exit 2 for unfit settings, 1 for a store that does not
    answer or read models this version cannot use) and not as a server whose start-up
    failed. The verifier it builds is the app's: the trust bundle and the CRLs are read,
    and their warnings (a stale CRL, no EPOA_COURT_BINS) logged, once."""
    from epoa.audit_worker import require_appendable_witness
    from epoa.clock_offset import warn_if_off
    from epoa.wiring import build_registry, build_verifier

    verifier = build_verifier(settings)
    if signs_checkpoints:  # the app signs checkpoints where it runs the read models
        require_appendable_witness(settings)
    build_registry(settings).close()  # says what `epoa db init` must make, if anything
    warn_if_off(settings.database_url)  # acts are dated by this host's clock
    if signs_checkpoints:  # and brings their tables to this version's shape
        from projections.db import connect
        from projections.runner import create_read_models

        tables = connect(settings.database_url)
        try:
            create_read_models(tables)
        finally:
            tables.close()
    return verifier


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to the address, as uvicorn would bind it; `ListenError` for a host
    that does not resolve or an address taken or not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn picks it
    try:
        found = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ListenError(f"--host {host}: {error.strerror}") from None
    _, kind, proto, _, address = found[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise ListenError(
            f"cannot listen on {_url_host(host)}:{port}: {error.strerror or error}"
        ) from None
    return listener


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _show(settings: Settings, text: str) -> None:
    if settings.effective_log_format == "json":  # one JSON object per line, banner included
        for line in text.splitlines():
            logging.getLogger("epoa").info(line.removeprefix("epoa: ").strip())
    else:
        print(text, flush=True)
