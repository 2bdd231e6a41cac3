"""The composition point: turn a :class:`~agentmem.config.Config` into live objects.

This is one of the two places (with the CLI) allowed to name concrete memory structures
and model backends; everything else works through the protocols.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import cast

from agentmem.agent import Agent, Budget
from agentmem.appfiles import remove_user_files
from agentmem.config import Config, ModelSpec
from agentmem.errors import ConfigError, StorageError
from agentmem.ledger.extraction import CachingExtractor, ModelExtractor, RuleExtractor
from agentmem.ledger.facts import FactLedger
from agentmem.manager import ForgetReceipt, MemoryManager
from agentmem.models.embeddings import (
    RUNTIMES,
    CachingEmbedder,
    MiniLMEmbedder,
    RetryingEmbedder,
    Runtime,
)
from agentmem.models.tokens import TokenCounter
from agentmem.prompts import DEFAULT_SYSTEM_PROMPT
from agentmem.protocols import ChatModel, Embedder, MemoryStore, StoreContext, StoreFactory
from agentmem.storage.records import Records
from agentmem.storage.repair import repair_vectors
from agentmem.storage.vectors import VectorIndex

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "agentmem.stores"


def store_factories() -> dict[str, StoreFactory]:
    """Return every known structure: the built-in ones, then entry-point plugins."""
    from agentmem.stores import BUILTIN

    factories: dict[str, StoreFactory] = dict(BUILTIN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in factories:
            logger.warning("ignoring plugin store %r: the name is taken", point.name)
            continue
        try:
            factories[point.name] = point.load()
        except Exception as exc:  # a broken plugin must not break agentmem
            logger.warning("cannot load plugin store %r: %s", point.name, exc)
    return factories


def expand_store_names(names: tuple[str, ...] | list[str]) -> list[str]:
    """Expand ``all`` into every built-in structure, and ``all-<name>`` into all but one.

    ``all-memtree`` is every built-in structure except ``memtree``: what ``all`` loses
    without it (an ablation). Other names are kept as given, each once.
    """
    from agentmem.stores import BUILTIN

    expanded: list[str] = []
    for name in names:
        if name == "all":
            group = list(BUILTIN)
        elif name.startswith("all-") and name[4:] in BUILTIN:
            group = [n for n in BUILTIN if n != name[4:]]
        else:
            group = [name]
        expanded += [n for n in group if n not in expanded]
    return expanded


def build_stores(names: tuple[str, ...] | list[str], context: StoreContext) -> list[MemoryStore]:
    """Instantiate structures by name.

    Raises:
        ConfigError: A name is unknown.
    """
    factories = store_factories()
    stores = []
    for name in expand_store_names(names):
        if name not in factories:
            raise ConfigError(
                f"unknown memory structure {name!r}", hint=f"known: {', '.join(sorted(factories))}"
            )
        stores.append(factories[name](context))
    return stores


def build_minilm(config: Config) -> MiniLMEmbedder:
    """Return the configured MiniLM (runtime and export cache folder), not yet loaded.

    Raises:
        ConfigError: ``config.embedder`` is not a MiniLM one, or names an unknown runtime.
    """
    spec = config.embedder
    name, _, runtime = spec.partition(":")
    if name != "minilm" or runtime not in ("", *RUNTIMES):
        raise ConfigError(
            f"unknown embedder {spec!r}", hint="use minilm, minilm:onnx or minilm:torch"
        )
    return MiniLMEmbedder(runtime=cast(Runtime, runtime or "auto"), cache_dir=config.cache_dir)


def build_embedder(config: Config) -> Embedder:
    """Return the configured embedder.

    Raises:
        ConfigError: The embedder name is unknown.
    """
    spec = config.embedder
    if spec.partition(":")[0] == "minilm":
        model = build_minilm(config)
        model.preload()  # in the background, while the caller opens the rest
        return CachingEmbedder(model)
    if spec.startswith("openai:"):
        from agentmem.models.openai_client import OpenAIEmbedder

        remote = OpenAIEmbedder(
            spec.partition(":")[2],
            api_key=config.openai_api_key,
            base_url=config.openai_base_url,
            timeout=config.timeout,
        )
        return CachingEmbedder(RetryingEmbedder(remote, attempts=config.max_retries + 1))
    raise ConfigError(
        f"unknown embedder {spec!r}", hint="use minilm, minilm:torch or openai:<model>"
    )


def resolve_model(config: Config) -> ModelSpec:
    """Pick the provider: explicit, or auto (an OpenAI key or URL, else none).

    ``auto`` never picks the local model, even installed: SmolLM2-135M is a demo that
    echoed its system prompt and answered a question with a date when it was the default
    (issue 35); it answers only when asked for (``local``), and recall-only answers are
    the honest default without an endpoint.
    """
    spec = config.model
    if spec.provider != "auto":
        return spec
    if config.openai_api_key or config.openai_base_url:
        return ModelSpec("openai", spec.name)
    return ModelSpec("none")


def build_model(config: Config) -> ChatModel | None:
    """Return the configured chat model (with retries and usage metering), or ``None``.

    Raises:
        ConfigError: The OpenAI provider has neither a key nor a URL.
        MissingExtraError: The local model runtime is not installed.
    """
    spec = resolve_model(config)
    if spec.provider == "none":
        return None
    from agentmem.models.llm import MeteredChatModel, RetryingChatModel

    model: ChatModel
    if spec.provider == "local":
        from agentmem.models.local_model import LlamaCppChatModel

        model = LlamaCppChatModel(spec.name, timeout=config.timeout)
    else:
        if not (config.openai_api_key or config.openai_base_url):
            raise ConfigError(
                "the openai provider needs an endpoint",
                hint="set OPENAI_API_KEY for OpenAI, or OPENAI_BASE_URL for a local server "
                "(e.g. http://127.0.0.1:11434/v1 for Ollama)",
            )
        from agentmem.models.openai_client import OpenAIChatModel

        model = OpenAIChatModel(
            spec.name or config.openai_model,
            api_key=config.openai_api_key,
            base_url=config.openai_base_url,
            timeout=config.timeout,
        )
    return MeteredChatModel(RetryingChatModel(model, attempts=config.max_retries + 1))


def _builds_with_model(config: Config, model: ChatModel | None) -> bool:
    """Whether memory is built by the chat model rather than the offline builders."""
    if model is None or config.model_builders == "no":
        return False
    if config.model_builders == "yes":
        return True
    # auto: the local demo model invents facts and garbles JSON (see OFFLINE.md).
    return resolve_model(config).provider == "openai"


@dataclass
class Components:
    """The objects a configuration builds."""

    config: Config
    records: Records
    vectors: VectorIndex
    embedder: Embedder
    model: ChatModel | None
    manager: MemoryManager

    def forget(self, user_id: str) -> ForgetReceipt:
        """Erase a user from memory (:meth:`MemoryManager.forget`) and the app's files.

        The files the chat app wrote into the data folder for the user (exports, the
        last answer copied) are removed too; the receipt's ``rewritten`` says so.
        """
        receipt = self.manager.forget(user_id)
        removed = remove_user_files(self.config.data_dir, user_id)
        if removed:
            receipt.rewritten.append(f"{len(removed)} file(s) the chat app wrote (removed)")
        return receipt

    def close(self) -> None:
        """Release database connections and model clients."""
        self.manager.close()
        for part in (self.model, self.embedder):
            _close(part)
        self.records.close()
        self.vectors.close()


def _close(part: object) -> None:
    """Close a model or embedder and, through wrappers, what it wraps."""
    seen = 0
    while part is not None and seen < 8:
        close = getattr(part, "close", None)
        if callable(close):
            close()
        part = getattr(part, "inner", None)
        seen += 1


def build(
    config: Config, *, model: ChatModel | None | str = "auto", embedder: Embedder | None = None
) -> Components:
    """Build records, vectors, embedder, model and memory manager from ``config``.

    Args:
        config: The configuration.
        model: A chat model to use instead of the configured one (``None`` for none).
        embedder: An embedder to share (e.g. one loaded MiniLM for several memories).
    """
    if config.read_only and config.chroma_url:
        raise ConfigError(
            "read-only memory needs the vector index in a folder",
            hint="with a Chroma server, give the user read-only rights there instead",
        )
    records = Records(config.records_url, read_only=config.read_only)
    try:
        # ``is None``: an empty CachingEmbedder is falsy (it has a length).
        embedder = embedder if embedder is not None else build_embedder(config)
        vectors = VectorIndex(
            embedder, path=config.vectors_path, url=config.chroma_url, read_only=config.read_only
        )
    except BaseException:
        records.close()  # an unknown embedder, a held folder: no connection left open
        raise
    try:
        # A process killed with the folder open may have left the vectors behind the records
        # (read-only memory repairs its private copy, so what it reads agrees with them).
        repair_vectors(records, vectors)
    except StorageError:
        vectors.close()  # the repair stays owed: the next open tries again
        records.close()
        raise
    try:
        return _assemble(config, records, vectors, embedder, model)
    except BaseException:
        # No endpoint for the openai provider, an unknown structure: what was opened is
        # closed (Python 3.13 warns about an SQLite connection left to the collector).
        vectors.close()
        records.close()
        raise


def _assemble(
    config: Config,
    records: Records,
    vectors: VectorIndex,
    embedder: Embedder,
    model: ChatModel | None | str,
) -> Components:
    """Build the model, the structures and the manager on opened records and vectors."""
    chat_model = build_model(config) if model == "auto" else model
    assert not isinstance(chat_model, str)
    try:
        return _manage(config, records, vectors, embedder, chat_model)
    except BaseException:
        if model == "auto":  # built here: closed here
            _close(chat_model)
        raise


def _manage(
    config: Config,
    records: Records,
    vectors: VectorIndex,
    embedder: Embedder,
    chat_model: ChatModel | None,
) -> Components:
    """Build the structures and the memory manager around ``chat_model``."""
    builder = chat_model if _builds_with_model(config, chat_model) else None
    extractor = CachingExtractor(ModelExtractor(builder) if builder else RuleExtractor(records))
    context = StoreContext(
        records=records, vectors=vectors, embedder=embedder, model=builder, extractor=extractor
    )
    manager = MemoryManager(
        records,
        embedder,
        build_stores(config.stores, context),
        facts=FactLedger(context) if config.facts else None,
        counter=TokenCounter(),
        rewriter=builder,
        iterative=config.iterative_recall,
        fusion=config.fusion,
        # Searches wait on the network with a Chroma server or a remote records database.
        parallel=bool(config.chroma_url) or not config.records_url.startswith("sqlite"),
        vectors=vectors,
    )
    return Components(config, records, vectors, embedder, chat_model, manager)


def build_agent(components: Components, *, session_id: str | None = None) -> Agent:
    """Build the agent loop for the configured user."""
    config = components.config
    budget = Budget(
        context_tokens=config.context_tokens,
        memory_tokens=config.memory_tokens,
        recent_turns=config.recent_turns,
        recall_k=config.recall_k,
    )
    return Agent(
        components.manager,
        components.model,
        user_id=config.user_id,
        session_id=session_id,
        budget=budget,
        system_prompt=config.system_prompt or DEFAULT_SYSTEM_PROMPT,
    )
