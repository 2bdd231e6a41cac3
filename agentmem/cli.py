"""The ``agentmem`` command: the chat app, a plain line chat, memory, and the replay.

A composition point: it may name concrete structures, models and the TUI.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TextIO

from rich.console import Console, ConsoleRenderable
from rich.logging import RichHandler

from agentmem.errors import (
    AgentMemError,
    InputError,
    MissingExtraError,
    ModelError,
    NotFoundError,
)
from agentmem.extras import install_command
from agentmem.terminal import markup_safe, visible

logger = logging.getLogger(__name__)


def package_version() -> str:
    """Return the installed version of agentmem."""
    try:
        return version("agentmem")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def data_dir_help() -> str:
    """Say where memory is kept by default: the variable, and the folder it falls back to."""
    from agentmem.config import default_data_dir

    fallback = default_data_dir({k: v for k, v in os.environ.items() if k != "AGENTMEM_HOME"})
    home = Path.home()
    shown = f"~/{fallback.relative_to(home)}" if fallback.is_relative_to(home) else str(fallback)
    return f"where memory is kept (default: $AGENTMEM_HOME or {shown})"


MODEL_HELP = "none | local | local:<file.gguf> | openai:<model> | auto"
AUTO_MEANS = "an OpenAI-compatible endpoint if one is configured, else none"


def _add_common(parser: argparse.ArgumentParser, *, chat: bool = True) -> None:
    """Add the flags ``chat`` and ``mcp`` share; ``chat=False``: the server's defaults."""
    parser.add_argument("--data-dir", help=data_dir_help())
    parser.add_argument("--config", help="a TOML configuration file")
    model_default = f"auto: {AUTO_MEANS}" if chat else "none"
    parser.add_argument("--model", help=f"{MODEL_HELP} (default: {model_default})")
    remembered = ", or the ones last chosen in the chat app here" if chat else ""
    parser.add_argument(
        "--stores", help=f"comma-separated memory structures (default: turns{remembered})"
    )
    parser.add_argument("--user", help="the user id (default: $AGENTMEM_USER or your login name)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``agentmem`` command."""
    parser = argparse.ArgumentParser(
        prog="agentmem", description="Long-term, consistent memory for conversational agents."
    )
    parser.add_argument("--version", action="version", version=f"agentmem {package_version()}")
    commands = parser.add_subparsers(dest="command")
    chat = commands.add_parser("chat", help="chat with memory (the terminal app)")
    _add_common(chat)
    chat.add_argument(
        "--plain", action="store_true", help="a line-by-line chat on stdin/stdout (for pipes)"
    )
    chat.add_argument(
        "--session", help="continue this session of the user (see: agentmem memory sessions)"
    )
    chat.add_argument(
        "--show-recall", action="store_true", help="print what was recalled before each answer"
    )
    from agentmem.cli_memory import add_memory_parser

    add_memory_parser(commands)
    _add_replay(commands)
    mcp = commands.add_parser(
        "mcp",
        help="serve memory to MCP clients on stdio or HTTP (needs the mcp extra)",
        description="Serve memory over the Model Context Protocol on stdin/stdout, or over "
        "Streamable HTTP with --http: the tools remember, search, list_memories, get_memory, "
        "update_memory, delete_memory, history, forget_memory and forget. With --user (or "
        "AGENTMEM_USER) the server serves that user only and refuses calls naming another; "
        "without one, every call must name its user_id. Logging goes to stderr.",
    )
    # The server answers no one itself: it serves memory, so it builds no chat model
    # unless asked (docs/mcp.md).
    _add_common(mcp, chat=False)
    mcp.add_argument(
        "--http",
        nargs="?",
        const="",
        default=None,
        metavar="[HOST:]PORT",
        help="serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio, so several "
        "clients share one memory (default 127.0.0.1:8765; a host other than loopback "
        "serves the network, with no authentication)",
    )
    mcp.set_defaults(model="none")
    return parser


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser(
        "replay",
        help="replay LoCoMo-format dialogues into memory configurations and score them",
        description="Replay long multi-session dialogues (LoCoMo JSON) into several memory "
        "configurations side by side, ask every question as of the end of the dialogue, and "
        "score evidence recall, answer-in-context, stale-fact leaks and costs. The baselines "
        "'recent' and 'similarity' are always added. Re-running with the same --out "
        "continues where the last run stopped.",
    )
    replay.add_argument("files", nargs="+", metavar="FILE", help="LoCoMo-format JSON files")
    replay.add_argument(
        "--stores",
        default="all,turns",
        help="comma list of configurations, each structure names joined by '+' "
        "(e.g. all,turns,memtree+graph; default: all,turns)",
    )
    replay.add_argument(
        "--model",
        default="none",
        help="none | local | local:<file.gguf> | openai:<model>: answers questions (F1) "
        "(default: none, recall only)",
    )
    replay.add_argument(
        "--model-builders",
        choices=("auto", "yes", "no"),
        default="auto",
        help="build memory with the model too (auto: only with an OpenAI-compatible endpoint)",
    )
    replay.add_argument(
        "--budget", type=int, default=1000, help="context tokens per question (default: 1000)"
    )
    replay.add_argument(
        "--k", type=int, default=20, help="items per structure before fusion (default: 20)"
    )
    replay.add_argument("--out", help="where the report and progress go (default: a temp dir)")
    replay.add_argument(
        "--limit-questions", type=int, help="ask at most N questions per conversation"
    )
    replay.add_argument(
        "--split",
        choices=("even", "odd"),
        help="replay only the samples at an even / odd 0-based index of each file "
        "(develop on even, report odd as unseen; default: all samples)",
    )
    replay.add_argument(
        "--breadth",
        action="store_true",
        help="also ask recap questions generated from the files' observations and session "
        "summaries, scored by coverage (docs/replay.md)",
    )
    replay.add_argument(
        "--data-dir", help="where each configuration's memory is kept (default: OUT/data)"
    )
    replay.add_argument(
        "--database-url",
        help="keep every configuration's records in this database (a SQLAlchemy URL, e.g. "
        "postgresql+psycopg://...) instead of SQLite files under the data folder",
    )
    replay.add_argument(
        "--chroma-url",
        help="keep every configuration's vectors on this Chroma server (http://host:port) "
        "instead of the data folder",
    )
    replay.add_argument("--judge", action="store_true", help="also grade answers with the model")
    replay.add_argument("--config", help="a TOML configuration file (for the model endpoint)")
    replay.add_argument("-v", "--verbose", action="count", default=0, help="more logging")


class _VisibleRichHandler(RichHandler):
    """A rich log handler that shows control characters in messages (they quote ids,
    file names and stored text) instead of sending them to the terminal."""

    def render_message(self, record: logging.LogRecord, message: str) -> ConsoleRenderable:
        return super().render_message(record, visible(message))


def _setup_logging(verbosity: int, console: Console) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[_VisibleRichHandler(console=console, show_path=False)],
        force=True,
    )
    for noisy in ("httpx", "chromadb", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _report(console: Console, exc: AgentMemError) -> None:
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    # Messages quote user input (paths, ids, text): never read them as markup or escapes.
    console.print(f"[bold red]error:[/] {markup_safe(message)}", highlight=False, markup=True)
    if exc.hint:
        console.print(f"[yellow]hint:[/] {markup_safe(exc.hint)}", highlight=False)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``agentmem`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Console(file=stdout or sys.stdout, highlight=False, soft_wrap=True)
    err = Console(file=stderr or sys.stderr, highlight=False, soft_wrap=True)
    if args.command is None:
        parser.print_help(out.file)
        return 0
    _setup_logging(args.verbose, err)
    try:
        if args.command == "chat":
            return _chat(args, stdin or sys.stdin, out, err)
        if args.command == "replay":
            return _replay(args, out, err)
        if args.command == "memory":
            from agentmem.cli_memory import run_memory

            return run_memory(args, stdin or sys.stdin, out, err)
        if args.command == "mcp":
            return _mcp(args)
    except AgentMemError as exc:
        _report(err, exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _components(args: argparse.Namespace) -> tuple[object, object]:
    from agentmem.config import load_config
    from agentmem.factory import build

    config = load_config(
        config_file=args.config,
        data_dir=args.data_dir,
        model=args.model,
        stores=args.stores,
        user_id=args.user,
        # The app keeps the structures chosen in it per folder; a plain chat uses them too,
        # as it shares the folder's memory.
        chat_choices=args.command == "chat",
    )
    return config, build(config)


def _chat(args: argparse.Namespace, stdin: TextIO, out: Console, err: Console) -> int:
    from agentmem.factory import Components, build_agent

    plain = args.plain or not stdin.isatty()
    _config, components = _components(args)
    assert isinstance(components, Components)
    try:
        if args.session is not None:
            _check_session(components.records, components.config.user_id, args.session)
        agent = build_agent(components, session_id=args.session)
        if not plain:
            try:
                from agentmem.tui.app import run_chat_app
            except ModuleNotFoundError as exc:
                if exc.name is None or not exc.name.startswith("textual"):
                    raise
                raise MissingExtraError(
                    "the chat app needs Textual, which is not installed",
                    hint=f"{install_command('chat')}, or chat in the terminal with --plain",
                ) from exc

            # The app resumes pending memory writes itself, in the background after its
            # first paint: resuming embeds, and loading the embedder takes seconds.
            run_chat_app(components, agent)
            return 0
        components.manager.resume(components.config.user_id)
        return _plain_chat(agent, stdin, out, err, show_recall=args.show_recall)
    finally:
        components.close()


def _mcp(args: argparse.Namespace) -> int:
    """Serve memory over MCP on stdio until the client hangs up, or over HTTP until stopped."""
    # Imported first: without the extra this fails before any memory is opened.
    from agentmem.config import login_user
    from agentmem.mcp_server import build_server, check_sdk
    from agentmem.mcp_transport import parse_address, serve_http, serve_stdio
    from agentmem.memory import Memory

    check_sdk()
    address = parse_address(args.http) if args.http is not None else None

    memory = Memory(
        args.data_dir,
        config_file=args.config,
        model=args.model,
        stores=args.stores,
        user_id=args.user,
    )
    # The server's user is a boundary: --user (or a configured user_id, set by
    # AGENTMEM_USER or the config file) pins it; without one, each call names its user.
    configured = memory.components.config.user_id
    served = args.user or (configured if configured != login_user() else None)
    try:
        server = build_server(memory, served)
        if address is None:
            logger.info("serving agentmem over MCP on stdio")
            serve_stdio(server)
        else:
            serve_http(server, *address)
    finally:
        memory.close()
    return 0


def _check_session(records: object, user_id: str, session_id: str) -> None:
    """Refuse a ``--session`` the user does not have.

    ``--session`` continues a session; starting a new one is what leaving it out does, so
    an unknown id is a typo or another data folder, not a wish for a session of that name.
    Another user's session is refused the same way, without saying it exists.

    Raises:
        NotFoundError: The user has no session of that id.
    """
    from agentmem.storage.records import Records

    assert isinstance(records, Records)
    if not any(s.id == session_id for s in records.sessions(user_id)):
        raise NotFoundError(
            f"user {user_id!r} has no session {session_id!r}",
            hint=f"list them with: agentmem memory sessions --user {user_id} "
            "(same --data-dir); leave out --session to start a new one",
        )


def _plain_chat(
    agent: object, stdin: TextIO, out: Console, err: Console, *, show_recall: bool
) -> int:
    """Chat line by line; return 1 if a message failed (after saying why), else 0."""
    from agentmem.agent import Agent

    assert isinstance(agent, Agent)
    if isinstance(stdin, io.TextIOWrapper):
        # Undecodable bytes reach the turn check (one typed error for that line) instead
        # of raising UnicodeDecodeError out of readline and ending the chat.
        stdin.reconfigure(errors="surrogateescape")
    interactive = stdin.isatty()
    sent = failed = 0
    model = agent.model.name if agent.model is not None else "none (recall only)"
    if interactive:
        out.print(
            f"[dim]agentmem {package_version()} · user {markup_safe(agent.user_id)} · "
            f"model {markup_safe(model)}. Ctrl-D to quit.[/]"
        )
    while True:
        if interactive:
            out.print("[bold cyan]you>[/] ", end="")
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/new":
            agent.new_session()
            out.print("[dim]new session[/]")
            continue

        def show(recall: object) -> None:
            from agentmem.manager import RecallResult
            from agentmem.prompts import render_memory_line

            assert isinstance(recall, RecallResult)
            if show_recall:
                for item in recall.memory:
                    line = markup_safe(render_memory_line(item))
                    out.print(f"[dim]recalled {line}[/]", markup=True, highlight=False)

        def write(chunk: str) -> None:
            # The answer quotes memory (a recall-only answer is memory) or comes from a
            # model: either may hold an escape sequence meant for nobody's terminal.
            out.file.write(visible(chunk))
            out.file.flush()

        sent += 1
        try:
            if interactive:
                out.print("[bold green]agent>[/] ", end="")
            agent.send(text, on_token=write, on_recall=show)
            out.file.write("\n")
            out.file.flush()
        except InputError as exc:
            failed += 1
            _report(err, exc)
        except ModelError as exc:
            failed += 1
            out.file.write("\n")
            _report(err, exc)
            err.print("[dim]your message was saved and will be remembered.[/]")
    agent.memory.end_session(agent.user_id, agent.session_id)
    if failed:
        # A script feeding the chat must be able to tell that a message went unanswered.
        err.print(f"{failed} of {sent} messages failed (exit status 1)", highlight=False)
        return 1
    return 0


def _replay(args: argparse.Namespace, out: Console, err: Console) -> int:
    from agentmem.config import load_config
    from agentmem.factory import build_embedder, build_minilm, build_model, resolve_model
    from agentmem.replay import breadth_table, kind_table, replay, summary_table

    for name in ("budget", "k"):
        if getattr(args, name) <= 0:
            raise InputError(f"--{name} must be positive, got {getattr(args, name)}")
    if args.limit_questions is not None and args.limit_questions < 0:
        raise InputError(f"--limit-questions must not be negative, got {args.limit_questions}")
    config = load_config(
        config_file=args.config,
        data_dir=args.data_dir,
        model=args.model,
        model_builders=args.model_builders,
    )
    model = build_model(config)
    # MiniLM is shared by every configuration and warmed by the replay itself (its
    # runtime and export cache as configured); another configured embedder (e.g. an
    # OpenAI-compatible endpoint) is used as configured.
    minilm = config.embedder.partition(":")[0] == "minilm"
    embedder = build_minilm(config) if minilm else build_embedder(config)
    builds = model is not None and (
        config.model_builders == "yes"
        or (config.model_builders == "auto" and resolve_model(config).provider == "openai")
    )
    try:
        report = replay(
            args.files,
            configurations=args.stores,
            out_dir=args.out,
            data_dir=args.data_dir,
            budget=args.budget,
            k=args.k,
            limit_questions=args.limit_questions,
            split=args.split,
            breadth=args.breadth,
            model=model,
            builds_with_model=builds,
            judge=args.judge,
            embedder=embedder,
            console=err,
            database_url=args.database_url,
            chroma_url=args.chroma_url,
        )
    finally:
        for part in (model, embedder):
            close = getattr(part, "close", None)
            if callable(close):
                close()
    # A table needs room; a pipe or file gets a wide one instead of a squeezed one.
    wide = Console(file=out.file, width=out.width if out.is_terminal else 220, highlight=False)
    wide.print(summary_table(report))
    for table in (kind_table(report), breadth_table(report)):
        if table is not None:
            wide.print(table)
    for kind, path in report.extra.get("files_written", {}).items():
        out.print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from agentmem.__main__ import run

    run()
