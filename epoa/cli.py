"""The `epoa` command: one subcommand per process role. Every one reads the same settings."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from pydantic import ValidationError

from epoa.settings import Settings, redacted


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    from epoa.logging_setup import configure

    try:
        settings = Settings()
    except ValidationError as error:
        print(f"epoa: bad settings: {_unfit(error)}", file=sys.stderr)
        return 2
    configure(settings.effective_log_format, settings.log_level)
    from epoa.checks import NEEDS, check_production

    try:
        needs = args.needs
        if getattr(args, "export", None) is not None:
            needs = "audit-export"
        elif getattr(args, "keys", None) is not None:
            needs = "audit-keys"
        if needs is not None:
            check_production(settings, NEEDS[needs])
        result: int = args.run(args, settings)
    except Exception as error:
        told = failure(error, settings)
        if told is None:
            raise
        status, line = told
        print(f"epoa: {line}", file=sys.stderr)
        return status
    return result


def failure(error: BaseException, settings: Settings) -> tuple[int, str] | None:
    """The exit status and the line (after `epoa: `) of a command that `error` ended: a
    setting unfit (2; every problem, one a line), nothing to verify (2), or a file, a
    command's input or the store refused (1, one line); None for any other error, whose
    traceback is shown. `epoa serve` tells a start-up that fails after its banner so too."""
    import sqlite3

    import psycopg
    import psycopg_pool
    from eventsourcing.persistence import PersistenceError

    from domain.errors import DomainError
    from epoa.audit_inputs import AuditInputError
    from epoa.db_admin import INIT_HINT
    from epoa.wiring import SettingsError
    from projections.read_model import ReadModelShapeError

    if isinstance(error, SettingsError):
        return 2, f"bad settings: {error}"
    if isinstance(error, AuditInputError):  # nothing to verify: exit 2, as for a missing store
        return 2, _one_line(str(error))
    if isinstance(error, OSError):  # a file the operator named: missing, unreadable, ...
        where = f": {error.filename}" if error.filename else ""
        return 1, _one_line(f"{error.strerror or error}{where}")
    if isinstance(error, CommandError | DomainError | ReadModelShapeError):
        return 1, _one_line(str(error))
    if isinstance(error, psycopg.errors.InsufficientPrivilege):  # grants lost, e.g. by a restore
        return 1, _one_line(f"the store refused: {error}; {INIT_HINT}")
    if isinstance(error, psycopg.Error | psycopg_pool.PoolTimeout):  # the store's own words
        return 1, _one_line(f"the store refused: {type(error).__name__}: {error}")
    if isinstance(error, sqlite3.Error | PersistenceError):  # a directory, a file of another kind
        store = redacted(settings.database_url)
        return 1, _one_line(f"the store at {store} refused: {type(error).__name__}: {error}")
    return None


def _unfit(error: ValidationError) -> str:
    """Each setting pydantic refused, by its variable's name, without the value it was given
    (a URL may carry a password). A check of several settings names them in its message."""
    problems = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["loc"]:
            name = "_".join(str(part) for part in problem["loc"]).upper()
            message = f"EPOA_{name}: {message}"
        problems.append(message)
    return "; ".join(problems)


def _one_line(message: str) -> str:
    """A driver's message may span several lines."""
    return " ".join(message.split())


class CommandError(Exception):
    """What an operator gave a command cannot be used (the message says why)."""


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What `add_subparsers` returns (argparse names no public type for it)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="epoa", description="The e-POA registry")
    parser.set_defaults(needs=None)  # which production checks run first (epoa.checks.NEEDS)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_processes(commands)
    _add_audit(commands)
    _add_tools(commands)
    return parser


def _add_processes(commands: Commands) -> None:
    """The long-running processes: the API, the projection worker, the consumer."""
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (8000)")
    serve.add_argument(
        "--no-projections",
        action="store_true",
        help="do not run the read models in-process (run `epoa project` apart)",
    )
    serve.set_defaults(run=_serve, needs="serve")

    project = commands.add_parser("project", help="run the projection worker")
    project.add_argument("--rebuild", action="store_true", help="rebuild the read models from zero")
    project.add_argument("--once", action="store_true", help="catch up, then exit")
    project.set_defaults(run=_project, needs="project")

    consume = commands.add_parser(
        "consume",
        help="consume court case events from Kafka",
        description="Apply the court case events of EPOA_CASE_EVENTS_TOPIC (brokers: "
        "EPOA_KAFKA_BOOTSTRAP), each exactly once; a message that cannot be applied goes to "
        "EPOA_CASE_EVENTS_DLQ_TOPIC. Signatures are checked against EPOA_TRUSTED_CA.",
    )
    consume.set_defaults(run=_consume, needs="consume")


def _add_audit(commands: Commands) -> None:
    """Verifying and exporting the history."""
    audit = commands.add_parser("audit", help="verify or export the whole history")
    audit_commands = audit.add_subparsers(required=True, metavar="ACTION")
    verify = audit_commands.add_parser("verify", help="replay and verify every record")
    verify.add_argument("--json", action="store_true", help="JSON lines instead of a summary")
    verify.add_argument("--witness", type=Path, help="a file of signed checkpoints kept apart")
    verify.add_argument("--receipts", type=Path, help="JSON lines of command receipts")
    verify.add_argument("--from", dest="start", type=int, help="first position to verify")
    verify.add_argument("--to", dest="stop", type=int, help="last position to verify")
    verify.add_argument("--export", type=Path, help="verify this export, not the store")
    verify.add_argument(
        "--keys",
        type=Path,
        help="the seal public keys to verify against (PEM, or the JSON of GET /v1/audit/keys); "
        "for the store, instead of the private EPOA_SEAL_KEY",
    )
    verify.set_defaults(run=_audit_verify, needs="audit")
    export = audit_commands.add_parser("export", help="write the whole history as JSON lines")
    export.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="where to write it (a file there is replaced); standard output if left out or -",
    )
    export.set_defaults(run=_audit_export, needs="audit")


def _add_tools(commands: Commands) -> None:
    """Keys, signing, the person directory, the database."""
    keys = commands.add_parser("keys", help="key material")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    demo = key_commands.add_parser(
        "demo",
        help="make a demo CA and PKCS#12 keys",
        description="Make a demo CA and PKCS#12 keys (password demo) in DIR, by default "
        "the demo directory of EPOA_VAR_DIR that `epoa serve` trusts in development (var/demo). "
        "A directory that holds demo keys already is refused unless --force: a new CA leaves "
        "every signature made with the old keys untrusted.",
    )
    demo.add_argument(
        "directory",
        type=Path,
        nargs="?",
        metavar="DIR",
        help="where (made if missing; EPOA_VAR_DIR/demo if left out)",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="replace the demo keys the directory holds (their CA is no longer trusted)",
    )
    demo.set_defaults(run=_keys_demo)

    sign = commands.add_parser("sign", help="sign a document as an EDS client does")
    sign.add_argument("--key", type=Path, required=True, help="PKCS#12 file")
    sign.add_argument(
        "--password",
        default="demo",
        help="the PKCS#12 password (demo, that of `epoa keys demo`); other users of the "
        "machine can read a password given here in the process list",
    )
    sign.add_argument(
        "--cloudevent",
        action="store_true",
        help="sign a case event: the signature goes into the event itself",
    )
    sign.add_argument("document", type=Path, help="JSON file, or - for standard input")
    sign.set_defaults(run=_sign)

    persons = commands.add_parser("persons", help="the person directory")
    person_commands = persons.add_subparsers(required=True, metavar="ACTION")
    load = person_commands.add_parser("import", help="import a CSV: iin,full_name,birth_date")
    load.add_argument("file", type=Path)
    load.set_defaults(run=_persons_import, needs="database")

    db = commands.add_parser("db", help="the PostgreSQL schema and the service's role")
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    init = db_commands.add_parser(
        "init",
        help="as the owner (EPOA_ADMIN_DATABASE_URL): create the tables, the append-only "
        "triggers and the least-privilege role of EPOA_DATABASE_URL",
    )
    init.set_defaults(run=_db_init, needs="database")


def _db_init(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.db_admin import init_database

    print(f"epoa: {init_database(settings)}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.server import ListenError, serve

    try:
        return serve(settings, args.host, args.port, run_projections=not args.no_projections)
    except ListenError as error:
        raise CommandError(str(error)) from None


def _port(text: str) -> int:
    """A TCP port to listen on, 1 to 65535 (argparse's error otherwise, exit 2)."""
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is no TCP port: 1 to 65535")
    return int(text)


def _project(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.workers import run_projections

    return run_projections(settings, rebuild=args.rebuild, once=args.once)


def _consume(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.dev import ensure_dev_material
    from epoa.workers import run_consumer

    settings, material = ensure_dev_material(settings, api_keys=False)  # the CA serve trusts
    if material is not None and material.demo is not None:
        logging.getLogger("epoa").warning(
            "DEVELOPMENT mode: trusting the DEMO CA %s (never in production)", material.demo.ca_pem
        )
    return run_consumer(settings)


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.audit_commands import verify_export, verify_store
    from epoa.audit_inputs import AuditInputError
    from epoa.checks import readable

    # An input named wrong is no verdict (exit 2), never the 1 of a damaged history.
    for option, path in (
        ("--export", args.export),
        ("--keys", args.keys),
        ("--witness", args.witness),
        ("--receipts", args.receipts),
    ):
        if path is not None and not readable(path):
            raise AuditInputError(f"{option} {path}: no readable file there; nothing was verified")
    if args.export is not None and (args.start, args.stop) != (None, None):
        raise AuditInputError("--from and --to verify positions of the store, not of --export")
    if args.export is not None:
        return verify_export(
            settings,
            args.export,
            as_json=args.json,
            keys=args.keys,
            witness=args.witness,
            receipts=args.receipts,
        )
    return verify_store(
        settings,
        as_json=args.json,
        keys=args.keys,
        witness=args.witness,
        receipts=args.receipts,
        start=args.start,
        stop=args.stop,
    )


def _audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.audit_commands import export_store

    to_stdout = args.file is None or str(args.file) == "-"
    return export_store(settings, None if to_stdout else args.file)


def _keys_demo(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.demo_keys import DEMO_PASSWORD, holds_demo, make_demo

    directory = args.directory if args.directory is not None else settings.var_dir / "demo"
    if holds_demo(directory) and not args.force:
        raise CommandError(
            f"{directory} already holds demo keys: a new demo CA would make every "
            "signature made with them untrusted; give --force to replace them"
        )
    demo = make_demo(directory)
    print(f"trust bundle (EPOA_TRUSTED_CA): {demo.ca_pem}")
    for identity in demo.identities:
        print(
            f"{identity.role:10} {identity.kind:12} {identity.id}  {identity.p12}  {identity.name}"
        )
    print(f"PKCS#12 password: {DEMO_PASSWORD!r}")
    return 0


def _sign(args: argparse.Namespace, settings: Settings) -> int:
    from domain.canonical import parse_json_object
    from epoa.demo_keys import sign_document

    raw = sys.stdin.buffer.read() if str(args.document) == "-" else args.document.read_bytes()
    document = parse_json_object(raw)
    if args.cloudevent:
        document.pop("signature", None)
    try:
        body = sign_document(document, args.key, args.password)
    except ValueError as error:  # cryptography's words for a wrong password or a bad file
        raise CommandError(f"{args.key}: cannot sign with this key: {error}") from None
    if args.cloudevent:
        body = {**document, "signature": body["signature"]}
    print(json.dumps(body, ensure_ascii=False))
    return 0


def _persons_import(args: argparse.Namespace, settings: Settings) -> int:
    from epoa.workers import import_persons

    return import_persons(settings, args.file)


if __name__ == "__main__":
    raise SystemExit(main())
