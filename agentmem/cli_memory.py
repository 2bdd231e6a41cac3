"""``agentmem memory``: list a user's sessions, search, export and forget their memory.

Outside the chat app, on the same data folder and configuration as ``agentmem chat``.
No chat model is built: these commands read and erase what is stored, and an unreachable
endpoint must not slow them down or make them fail.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.table import Table

from agentmem.errors import DataDirLockedError, InputError, NotFoundError
from agentmem.storage.locking import LOCK_NAME
from agentmem.terminal import shown

if TYPE_CHECKING:  # the memory stack loads only when a memory command runs
    from agentmem.config import Config
    from agentmem.memory import Memory
    from agentmem.results import MemoryRecord


def add_memory_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``memory`` command group to the ``agentmem`` command."""
    memory = commands.add_parser(
        "memory",
        help="list sessions, search, export or forget a user's memory",
        description="Inspect and manage memory outside the chat app, in the same data folder "
        "(--data-dir, $AGENTMEM_HOME, config file) as 'agentmem chat'. The user is --user, "
        "else $AGENTMEM_USER or the config's user_id, else your login name.",
    )
    actions = memory.add_subparsers(dest="memory_command", metavar="COMMAND", required=True)

    sessions = actions.add_parser("sessions", help="a user's sessions: id, started, turns")
    _add_flags(sessions)

    search = actions.add_parser(
        "search",
        help="search a user's memory: items with structure, validity and source turns",
    )
    search.add_argument("query", metavar="QUERY", help="what to look for")
    search.add_argument("--history", action="store_true", help="include items that no longer hold")
    search.add_argument(
        "-k", "--top-k", type=int, default=10, help="the most items to show (default: 10)"
    )
    _add_flags(search)

    export = actions.add_parser(
        "export", help="everything memory holds about a user, as JSON (sessions, turns, items)"
    )
    export.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")
    _add_flags(export)

    forget = actions.add_parser(
        "forget", help="erase everything about a user: turns, memory items, sessions"
    )
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_flags(forget, user_required=True)


def _add_flags(parser: argparse.ArgumentParser, *, user_required: bool = False) -> None:
    from agentmem.cli import data_dir_help

    parser.add_argument("--user", required=user_required, help="the user id")
    parser.add_argument("--data-dir", help=data_dir_help())
    parser.add_argument("--config", help="a TOML configuration file")
    parser.add_argument(
        "--stores",
        help="comma-separated memory structures to rank first (every built-in one is "
        "always read; default: the configured ones)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")


def run_memory(args: argparse.Namespace, stdin: TextIO, out: Console, err: Console) -> int:
    """Run one ``agentmem memory`` command; return its exit status.

    Raises:
        AgentMemError: The configuration, the data folder, the user or an argument is
            not acceptable (the caller reports it and exits with status 2).
    """
    if args.memory_command == "search" and args.top_k < 1:
        raise InputError(f"--top-k must be positive, got {args.top_k}")
    memory, where = _open(args, err)
    try:
        user_id = memory.components.config.user_id
        _check_user(memory, user_id, where)
        if args.memory_command == "sessions":
            return _sessions(memory, user_id, out)
        if args.memory_command == "search":
            return _search(memory, user_id, args.query, args.history, args.top_k, out)
        if args.memory_command == "export":
            return _export(memory, user_id, args.out, out, err)
        return _forget(memory, user_id, where, args.yes, stdin, out)
    finally:
        memory.close()


def _open(args: argparse.Namespace, err: Console) -> tuple[Memory, str]:
    """Open the configured memory with every built-in structure and no chat model.

    Every structure is built, the configured ones first: an export or a search must not
    miss the items of a structure the chat used but this command's configuration leaves
    out, and forgetting must reach the search index of every structure.

    A data folder this process may not write (another user's, a mounted backup) is opened
    read-only by the commands that only read (sessions, search, export); a writable one
    as the chat opens it, so nothing is copied and what a killed process left journaled
    is written. A folder another process holds (the chat app, ``agentmem mcp``) is read
    read-only too, from a snapshot, saying so on ``err``; ``forget`` is refused there.

    Raises:
        ConfigError: The configuration is invalid.
        NotFoundError: Nothing has been kept in the data folder yet.
        DataDirLockedError: Another process holds the folder and the command writes.
        StorageError: The data folder cannot be opened.
    """
    from agentmem.config import load_config, with_overrides
    from agentmem.factory import build
    from agentmem.memory import Memory

    config = load_config(
        config_file=args.config,
        data_dir=args.data_dir,
        stores=args.stores,
        user_id=args.user,
        model="none",
    )
    where = "the records database" if config.database_url else str(config.data_dir)
    if config.database_url is None and not (config.data_dir / "agentmem.sqlite").is_file():
        # Opening would create an empty memory there: say there is none instead.
        raise NotFoundError(
            f"no memory is kept in {config.data_dir}",
            hint="pass the --data-dir (or AGENTMEM_HOME) that 'agentmem chat' used",
        )
    only_reads = args.memory_command != "forget"
    reading = only_reads and not _writable(config)
    config = with_overrides(config, stores=[*config.stores, "all"], read_only=reading or None)
    try:
        return Memory.from_components(build(config, model=None)), where
    except DataDirLockedError as exc:
        if not only_reads:
            raise
        # The chat app holds its folder while it runs, which is when a user wants to look.
        err.print(shown(f"note: {exc.args[0]}; reading a snapshot of it, read-only"))
    config = with_overrides(config, read_only=True)
    return Memory.from_components(build(config, model=None)), where


def _writable(config: Config) -> bool:
    """Return whether this process may write the data folder's records and vector index."""
    if config.database_url is not None or config.chroma_url is not None:
        return True  # a server's rights are the server's to enforce
    folder = config.data_dir
    paths = [folder, folder / "agentmem.sqlite", config.vectors_path]
    paths += [config.vectors_path / name for name in ("chroma.sqlite3", LOCK_NAME)]
    return all(os.access(path, os.W_OK) for path in paths if path.exists())


def _check_user(memory: Memory, user_id: str, where: str) -> None:
    """Raise :class:`NotFoundError` unless ``user_id`` has memory here.

    The hint names no other user: in a folder several people share, a typo must not list
    who else has memory there (issue 35).
    """
    users = memory.records.users()
    if user_id in users:
        return
    hint = (
        "no user has memory here yet"
        if not users
        else "check the id: pass the --user that 'agentmem chat' used (by default "
        "$AGENTMEM_USER or your login name), and the same --data-dir"
    )
    raise NotFoundError(f"no user {user_id!r} in {where}", hint=hint)


def _sessions(memory: Memory, user_id: str, out: Console) -> int:
    turns: dict[str, int] = {}
    last: dict[str, datetime] = {}
    for turn in memory.records.turns(user_id):
        turns[turn.session_id] = turns.get(turn.session_id, 0) + 1
        last[turn.session_id] = max(turn.timestamp, last.get(turn.session_id, turn.timestamp))
    table = Table(title=shown(f"sessions of {user_id} (times in UTC)"), title_justify="left")
    table.add_column("session", no_wrap=True)
    table.add_column("started", no_wrap=True)
    # SessionRow.ended_at is never set, so the last turn stands for how long it went on.
    table.add_column("last turn", no_wrap=True)
    table.add_column("turns", justify="right")
    for session in memory.records.sessions(user_id):
        table.add_row(
            shown(session.id),
            _moment(session.started_at),
            _moment(last.get(session.id)) or "-",
            str(turns.get(session.id, 0)),
        )
    _wide(out).print(table)
    return 0


def _search(
    memory: Memory, user_id: str, query: str, history: bool, top_k: int, out: Console
) -> int:
    result = memory.search(query, user_id=user_id, top_k=top_k, include_history=history)
    if not result.items:
        out.print(shown(f"nothing found for {query!r}"))
        return 0
    table = Table(title=shown(f"{user_id}: {result.query}"), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("memory", ratio=1)
    table.add_column("store")
    table.add_column("validity", no_wrap=True)
    table.add_column("source turns")
    for rank, record in enumerate(result.items, start=1):
        table.add_row(
            str(rank),
            f"{record['score'] or 0.0:.4f}",
            shown(record["memory"]),
            shown(record["store"]),
            validity(record),
            _turn_ids(record["source_turn_ids"]),
        )
    _wide(out).print(table)
    return 0


def validity(record: MemoryRecord) -> str:
    """Say in words whether an item holds, and since and until when (UTC)."""
    since, until = _moment(record["valid_from"]), _moment(record["invalid_at"])
    if record["current"]:
        return f"current since {since}" if since else "current"
    words = "ended"
    if since:
        words += f", since {since}"
    if until:
        words += f" until {until}"
    if record["superseded_by"]:
        words += " (replaced)"
    return words


def _export(memory: Memory, user_id: str, path: str | None, out: Console, err: Console) -> int:
    if path is None:
        data = memory.export(user_id)
        # The same JSON as Memory.export writes to a file; raw, so rich adds no markup.
        out.file.write(json.dumps(data, indent=2, default=str) + "\n")
        out.file.flush()
        return 0
    try:
        data = memory.export(user_id, path)
    except (OSError, ValueError) as exc:  # ValueError: a path with a NUL character
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(
            f"cannot write the export to {path}: {reason}",
            hint="pass --out a file in a folder that exists and you can write to",
        ) from exc
    counts = _counts(len(data["turns"]), len(data["items"]), len(data["sessions"]))
    err.print(shown(f"exported {counts} of user {user_id!r} to {path}"))
    return 0


def _forget(
    memory: Memory, user_id: str, where: str, yes: bool, stdin: TextIO, out: Console
) -> int:
    if not yes:
        turns = memory.records.count_turns(user_id)
        items = len(memory.get_all(user_id=user_id, include_history=True))
        sessions = len(memory.records.sessions(user_id))
        out.print(
            shown(
                f"This erases everything about user {user_id!r} in {where}: "
                f"{_counts(turns, items, sessions)}. It cannot be undone."
            )
        )
        out.print(shown("Forget this user? [y/N] "), end="")
        answer = stdin.readline().strip().lower()
        if not stdin.isatty():
            out.print()  # the answer came from a pipe: end the prompt's line
        if answer not in ("y", "yes"):
            out.print("Nothing was forgotten.")
            return 1
    receipt = memory.forget(user_id)
    counts = _counts(
        receipt.get("turns", 0),
        receipt.get("memory items", 0),
        receipt.get("sessions", 0),
    )
    out.print(
        shown(
            f"Forgot user {user_id!r}: removed {counts}, with the items' change history "
            "and search index entries."
        )
    )
    if receipt.rewritten:
        out.print(shown("Rewritten so that no copy stays on disk: " + "; ".join(receipt.rewritten)))
    return 0


def _counts(turns: int, items: int, sessions: int) -> str:
    return (
        f"{_plural(turns, 'turn')}, {_plural(items, 'memory item')} "
        f"and {_plural(sessions, 'session')}"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _turn_ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids) if ids else "-"


def _wide(out: Console) -> Console:
    """Return a console for tables: a pipe or file gets a wide one, not a squeezed one."""
    if out.is_terminal:
        return out
    return Console(file=out.file, width=160, highlight=False)
