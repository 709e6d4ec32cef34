"""The `accessledger` command: run the service, or play admin operations."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

DEFAULT_DATABASE = "sqlite:///./accessledger.db"
# Operations per transaction when playing in-process.
BATCH_SIZE = 500

log = logging.getLogger("accessledger")


def store_errors() -> tuple[type[BaseException], ...]:
    import sqlalchemy
    from eventsourcing.persistence import PersistenceError

    return (sqlalchemy.exc.SQLAlchemyError, PersistenceError)


def database_url(given: str | None) -> str:
    return given or os.environ.get("ACCESSLEDGER_DATABASE_URL") or DEFAULT_DATABASE


def beside_database(url: str) -> Path:
    """The folder of a SQLite file; the working folder for other stores."""
    from api.ledger import sqlite_path

    path = sqlite_path(url)
    return path.resolve().parent if path is not None else Path.cwd()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    url = database_url(getattr(args, "database", None))
    problem = url_problem(url)
    if problem is not None:
        print(f"accessledger: the store's URL {problem}", file=sys.stderr)
        return 2

    try:
        return int(args.run(args) or 0)
    except store_errors() as error:
        print(
            f"accessledger: cannot use the store {shown(url)}: {why(error)}",
            file=sys.stderr,
        )
        return 2


# The stores this service runs on, by SQLAlchemy's name for them.
KNOWN_STORES = {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}


def url_problem(url: str) -> str | None:
    """What is wrong with a store's URL, said without repeating the URL (it
    may hold a password anywhere when it does not parse)."""
    import sqlalchemy

    try:
        parsed = sqlalchemy.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return "is not a database URL"
    if parsed.drivername not in KNOWN_STORES:
        return "names no store this service knows (sqlite:/// or postgresql+psycopg://)"
    if "@" in (parsed.host or ""):
        return "has an '@' in its password or user name: write it as %40"
    return None


def shown(url: str) -> str:
    """A store's URL without its user, password or query (which can also
    hold a password); a SQLite URL is a file's path and is shown whole."""
    import sqlalchemy

    parsed = sqlalchemy.make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return url
    where = sqlalchemy.URL.create(
        parsed.drivername, host=parsed.host, port=parsed.port, database=parsed.database
    )
    return where.render_as_string()


def why(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error.__cause__ or error
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accessledger",
        description="The access-control ledger for LLM gateways.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the HTTP API",
        description="Run the HTTP API. The store is created on first start.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=whole_number(1, 65535),
        default=4000,
        help="port to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=whole_number(1, 64),
        default=1,
        help="processes answering on the port, each with its own read model "
        "(default: %(default)s)",
    )
    add_database_option(serve)
    serve.set_defaults(run=run_serve)

    apply = commands.add_parser(
        "apply",
        help="play admin operations from a JSON Lines file",
        description=(
            "Play admin operations (the format of shared/data/README.md) through "
            "the application service, in this process (--database) or through a "
            "running server (--server, with ACCESSLEDGER_TOKEN). Stops at the "
            "first invalid operation, keeping every operation before it."
        ),
    )
    apply.add_argument("file", type=Path, help="operations, one JSON object a line")
    target = apply.add_mutually_exclusive_group()
    add_database_option(target)
    target.add_argument("--server", help="base URL of a running server")
    apply.add_argument(
        "--refs-out",
        type=Path,
        help="where to write local reference -> id (default: beside the store)",
    )
    apply.add_argument(
        "--secrets-out",
        type=Path,
        help="where to write the new keys' secrets, mode 0600 "
        "(default: beside the store)",
    )
    apply.add_argument("--reason", help="reason recorded with every change")
    add_progress_option(apply)
    apply.set_defaults(run=run_apply)

    audit = commands.add_parser("audit", help="replay and export the event log")
    audit_commands = audit.add_subparsers(required=True, metavar="ACTION")
    replay = audit_commands.add_parser(
        "replay",
        help="rebuild every read model from the log and compare",
        description=(
            "Rebuild every read model from the event log into fresh tables beside "
            "the live ones (which keep serving) and compare them table by table. "
            "Prints the digests; with --verify, exits 1 when they differ."
        ),
    )
    until = replay.add_mutually_exclusive_group()
    until.add_argument("--until-position", type=int, help="replay up to this position")
    until.add_argument("--until-time", help="replay up to this time (RFC 3339)")
    replay.add_argument(
        "--verify",
        action="store_true",
        help="exit 1 and list differences when replay and live differ",
    )
    add_progress_option(replay)
    add_database_option(replay)
    replay.set_defaults(run=run_replay)

    export = audit_commands.add_parser(
        "export",
        help="write every event as JSON Lines or CSV",
        description="Stream the event log, one row per event, to standard output.",
    )
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument(
        "--from",
        dest="start",
        help="events after this position, or committed after this time",
    )
    export.add_argument(
        "--to", dest="end", help="events up to this position, or committed by this time"
    )
    add_database_option(export)
    export.set_defaults(run=run_export)

    projections = commands.add_parser("projections", help="manage the read models")
    projection_commands = projections.add_subparsers(required=True, metavar="ACTION")
    rebuild = projection_commands.add_parser(
        "rebuild",
        help="rebuild the read models and switch over atomically",
        description=(
            "Build fresh read-model tables from the event log beside the live ones, "
            "then swap them in one transaction: no downtime, no half-built tables. "
            "Running servers keep answering throughout."
        ),
    )
    add_progress_option(rebuild)
    add_database_option(rebuild)
    rebuild.set_defaults(run=run_rebuild)

    add_import_command(commands)
    return parser


def add_import_command(commands: Any) -> None:
    imports = commands.add_parser("import", help="take resources from a gateway config")
    import_commands = imports.add_subparsers(required=True, metavar="SOURCE")
    litellm = import_commands.add_parser(
        "litellm-config",
        help="register a LiteLLM proxy config's models, MCP servers and access groups",
        description=(
            "Register every model_name of model_list (and the model aliases), every "
            "MCP server of mcp_servers, and make each access_groups name an access "
            "group holding its models and servers. Prints the plan first, then "
            "makes it in one transaction. Only adds: a second run changes nothing."
        ),
    )
    litellm.add_argument("config", type=Path, help="the proxy's config.yaml")
    litellm.add_argument(
        "--dry-run", action="store_true", help="print the plan and change nothing"
    )
    litellm.add_argument("--reason", help="reason recorded with every change")
    add_database_option(litellm)
    litellm.set_defaults(run=run_import_litellm)


def add_progress_option(parser: Any) -> None:
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )


def whole_number(lowest: int, highest: int) -> Callable[[str], int]:
    """An argument type: a whole number in a range, refused with its range."""

    def parse(text: str) -> int:
        if not text.isdigit() or not lowest <= int(text) <= highest:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {lowest} to {highest}"
            )
        return int(text)

    return parse


def add_database_option(parser: Any) -> None:
    parser.add_argument(
        "--database",
        help="SQLAlchemy URL of the store (default: ACCESSLEDGER_DATABASE_URL, "
        f"else {DEFAULT_DATABASE})",
    )


# The service logs its own request lines (api.observability); no `server`
# header names the software and its version to whoever asks.
SERVER_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "log_level": "warning",
    "server_header": False,
}
TRUSTED_PROXIES = "ACCESSLEDGER_TRUSTED_PROXIES"


def server_options() -> dict[str, Any]:
    """X-Forwarded-For and -Proto count only from the proxies named in
    ACCESSLEDGER_TRUSTED_PROXIES. Trusting them from anywhere local (the
    server's default) would let any local client name itself anew on every
    request, and so never be slowed down after refused sign-ins."""
    trusted = os.environ.get(TRUSTED_PROXIES, "").strip()
    if not trusted:
        return {**SERVER_OPTIONS, "proxy_headers": False}
    return {**SERVER_OPTIONS, "proxy_headers": True, "forwarded_allow_ips": trusted}


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.auth import AdminTokens, master_key_hash
    from api.ledger import Ledger

    url = database_url(args.database)
    if args.workers > 1:
        return serve_workers(args, url)
    ledger = Ledger(url)
    master_hash, where = master_key_hash(ledger.engine, beside_database(url))
    log.info("accessledger: %s", where)
    log.info("accessledger: store ready at position %d", ledger.index.position)
    app = create_app(ledger, AdminTokens(master_hash))
    uvicorn.run(app, host=args.host, port=args.port, **server_options())
    ledger.close()
    return 0


def serve_workers(args: argparse.Namespace, url: str) -> int:
    """Several processes on one port, like replicas: each follows the store."""
    import uvicorn

    from api.auth import master_key_hash
    from api.ledger import Ledger

    store = Ledger(url, with_index=False)
    master_hash, where = master_key_hash(store.engine, beside_database(url))
    store.close()
    log.info("accessledger: %s; %d workers", where, args.workers)
    # The workers are new interpreters: they learn the store and the master
    # key's hash (never the key) from their environment.
    os.environ[WORKER_URL] = url
    os.environ[WORKER_MASTER_HASH] = master_hash
    uvicorn.run(
        "api.cli:worker_app",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        **server_options(),
    )
    return 0


WORKER_URL = "ACCESSLEDGER_WORKER_DATABASE_URL"
WORKER_MASTER_HASH = "ACCESSLEDGER_WORKER_MASTER_KEY_HASH"


def worker_app() -> Any:
    """The application of one worker process of `serve --workers`."""
    from api.app import create_app
    from api.auth import AdminTokens
    from api.ledger import Ledger

    ledger = Ledger(os.environ[WORKER_URL])
    return create_app(ledger, AdminTokens(os.environ[WORKER_MASTER_HASH]))


def run_apply(args: argparse.Namespace) -> int:
    lines = read_operations(args.file)
    folder = Path.cwd() if args.server else beside_database(database_url(args.database))
    refs_path, secrets_path = output_paths(args, folder)
    for path in (refs_path, secrets_path):
        if path.exists():
            # Secrets are shown once: never overwrite the only copy of them.
            print(
                f"accessledger apply: {path} exists; move it away or name other "
                "files with --refs-out and --secrets-out",
                file=sys.stderr,
            )
            return 2
    player, closer = open_player(args)
    failure = None
    try:
        failure = play_all(player, lines, show_progress=not args.no_progress)
    finally:
        closer()
        write_outputs(player, refs_path, secrets_path)

    if failure is not None:
        number, message = failure
        print(f"{args.file}:{number}: {message}", file=sys.stderr)
        print(
            f"stopped; the {number - 1} operations before it were applied",
            file=sys.stderr,
        )
        return 1
    print(f"applied {len(lines)} operations", file=sys.stderr)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from api.ledger import Ledger
    from domain.errors import LedgerError
    from projections.past import until_position
    from projections.replay import replay

    ledger = Ledger(database_url(args.database), with_index=False)
    try:
        head = ledger.current()
        until_time = args.until_time
        until = until_position(ledger.engine, args.until_position, until_time, head)
        with tqdm(
            total=until, unit="event", disable=args.no_progress, file=sys.stderr
        ) as bar:
            report = replay(ledger.audit, ledger.engine, until, bar.update)
    except LedgerError as error:
        print(f"accessledger audit replay: {error.message}", file=sys.stderr)
        return 2
    finally:
        ledger.close()

    print(json.dumps(report.public(), indent=2))
    return 1 if args.verify and not report.matches else 0


def run_export(args: argparse.Namespace) -> int:
    from api.ledger import Ledger
    from domain.errors import LedgerError
    from projections.audit import as_csv, as_jsonl
    from projections.past import export_bound

    ledger = Ledger(database_url(args.database), with_index=False)
    try:
        head = ledger.current()
        try:
            start = export_bound(ledger.engine, args.start, head, default=0)
            end = export_bound(ledger.engine, args.end, head, default=head)
        except LedgerError as error:
            print(f"accessledger audit export: {error.message}", file=sys.stderr)
            return 2
        records = ledger.audit.stream(start, end)
        chunks = as_csv(records) if args.format == "csv" else as_jsonl(records)
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
    finally:
        ledger.close()
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from api.ledger import Ledger
    from projections.replay import switch_over

    ledger = Ledger(database_url(args.database))
    try:
        with tqdm(
            total=ledger.index.position,
            unit="event",
            disable=args.no_progress,
            file=sys.stderr,
        ) as bar:
            done = switch_over(ledger, bar.update)
    finally:
        ledger.close()
    print(
        f"rebuilt the read models from {done['events']} events; live at position "
        f"{done['position']}",
        file=sys.stderr,
    )
    return 0


def run_import_litellm(args: argparse.Namespace) -> int:
    from api.ledger import Ledger
    from api.litellm_config import ConfigError, carry_out, plan, read_config
    from domain.aggregates import Change
    from domain.errors import LedgerError

    try:
        wanted = read_config(args.config)
    except ConfigError as error:
        print(f"accessledger import: {error}", file=sys.stderr)
        return 2
    ledger = Ledger(database_url(args.database))
    try:
        steps = plan(ledger.index, wanted)
        for step in steps:
            print(step.line())
        changes = [step for step in steps if step.changes]
        print(f"{len(changes)} to change, {len(steps) - len(changes)} already there")
        if args.dry_run or not changes:
            print("nothing changed" + (" (dry run)" if args.dry_run else ""))
            return 0
        position = carry_out(ledger, changes, Change(actor="cli", reason=args.reason))
    except LedgerError as error:
        print(f"accessledger import: {error.code}: {error.message}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    print(f"done; the ledger is at position {position}")
    return 0


def read_operations(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SystemExit(f"accessledger apply: cannot read {path}: {error}") from None


def output_paths(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    stem = args.file.stem
    return (
        args.refs_out or folder / f"{stem}.refs.json",
        args.secrets_out or folder / f"{stem}.secrets.jsonl",
    )


def open_player(args: argparse.Namespace) -> tuple[Any, Any]:
    """A player on the chosen target, and what closes the target."""
    import httpx

    from api.history import HistoryPlayer, HttpBackend, LocalBackend
    from api.ledger import Ledger
    from domain.aggregates import Change

    if args.server:
        token = os.environ.get("ACCESSLEDGER_TOKEN")
        if not token:
            raise SystemExit("accessledger apply --server needs ACCESSLEDGER_TOKEN")
        headers = {"Authorization": f"Bearer {token}"}
        if args.reason:
            headers["X-Change-Reason"] = args.reason
        client = httpx.Client(base_url=args.server, headers=headers, timeout=30.0)
        # httpx logs every request at INFO; one line per operation is noise here.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        return HistoryPlayer(HttpBackend(client)), client.close

    url = database_url(args.database)
    ledger = Ledger(url)
    change = Change(actor="cli", reason=args.reason)
    return HistoryPlayer(LocalBackend(ledger, change)), ledger.close


def play_all(
    player: Any, lines: list[str], show_progress: bool
) -> tuple[int, str] | None:
    """Play every line; the failing line's number and reason, or None.

    Lines go in batches of BATCH_SIZE, one transaction each when playing
    in-process; a failing operation ends its batch after the ones before it.
    """
    from tqdm import tqdm

    progress = tqdm(
        total=len(lines),
        unit="op",
        disable=not show_progress,
        file=sys.stderr,
        mininterval=0.5,
    )
    with progress:
        for start in range(0, len(lines), BATCH_SIZE):
            with player.backend.batch():
                failure = play_batch(player, lines, start, progress)
            if failure is not None:
                return failure
    return None


def play_batch(
    player: Any, lines: list[str], start: int, progress: Any
) -> tuple[int, str] | None:
    from domain.errors import LedgerError

    for number in range(start + 1, min(start + BATCH_SIZE, len(lines)) + 1):
        line = lines[number - 1]
        if line.strip():
            try:
                player.play(json.loads(line))
            except json.JSONDecodeError as error:
                return number, f"not JSON: {error.msg}"
            except LedgerError as error:
                return number, f"{error.code}: {error.message}"
        progress.update(1)
    return None


def write_outputs(player: Any, refs_path: Path, secrets_path: Path) -> None:
    refs_path.write_text(json.dumps(player.refs, indent=0) + "\n", encoding="utf-8")

    descriptor = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        for ref, secret in player.secrets.items():
            file.write(
                json.dumps({"key": ref, "id": player.refs.get(ref), "secret": secret})
                + "\n"
            )
    print(f"references in {refs_path}; secrets in {secrets_path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
