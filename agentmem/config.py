"""Configuration: the one place that reads the environment and the TOML file.

Precedence, lowest first: built-in defaults, the TOML file, environment variables,
explicit overrides (command-line flags or keyword arguments). Nothing is read at import.
Every value, whatever its source, is checked by pydantic against the field types of
:class:`Config`; a bad one is a :class:`~agentmem.errors.ConfigError` naming the key and
where the value came from.

Environment variables:
    AGENTMEM_HOME         data directory (default: $XDG_DATA_HOME/agentmem,
                          else ~/.local/share/agentmem)
    AGENTMEM_CONFIG       path of the TOML file (default: <data dir>/config.toml)
    AGENTMEM_MODEL        none | local | local:<file.gguf> | openai:<model> | auto
    AGENTMEM_EMBEDDER     minilm | minilm:onnx | minilm:torch | openai:<model>
    AGENTMEM_CACHE_DIR    where the embedding model's ONNX export is kept (default:
                          $XDG_CACHE_HOME/agentmem, else ~/.cache/agentmem)
    AGENTMEM_STORES       comma-separated structure names (default: turns)
    AGENTMEM_USER         the user id of the chat app (default: your login name)
    AGENTMEM_DATABASE_URL a SQLAlchemy URL for the records (default: SQLite in the data dir)
    AGENTMEM_CHROMA_URL   a Chroma server URL (default: embedded chromadb in the data dir)
    AGENTMEM_OPENAI_MODEL the model of ``openai`` without a name (default: gpt-4o-mini)
    AGENTMEM_MODEL_BUILDERS  auto | yes | no: build memory with the chat model
    AGENTMEM_FUSION       lead | rank: how recall merges the structures' rankings
    OPENAI_API_KEY, OPENAI_BASE_URL   the OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, ...)
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as validated_dataclass

from agentmem.errors import ConfigError
from agentmem.types import FUSIONS, Fusion

logger = logging.getLogger(__name__)

PROVIDERS = ("auto", "none", "local", "openai")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

#: Environment variables and the fields they set.
ENVIRONMENT = {
    "AGENTMEM_HOME": "data_dir",
    "AGENTMEM_MODEL": "model",
    "AGENTMEM_EMBEDDER": "embedder",
    "AGENTMEM_CACHE_DIR": "cache_dir",
    "AGENTMEM_STORES": "stores",
    "AGENTMEM_USER": "user_id",
    "AGENTMEM_DATABASE_URL": "database_url",
    "AGENTMEM_CHROMA_URL": "chroma_url",
    "AGENTMEM_OPENAI_MODEL": "openai_model",
    "AGENTMEM_MODEL_BUILDERS": "model_builders",
    "AGENTMEM_FUSION": "fusion",
    "OPENAI_API_KEY": "openai_api_key",
    "OPENAI_BASE_URL": "openai_base_url",
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which chat model to use: a provider and, optionally, a model name or file."""

    provider: str = "auto"
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Parse ``none``, ``local``, ``local:<file>``, ``openai:<model>`` or ``auto``.

        Raises:
            ConfigError: The text names no known provider.
        """
        provider, _, name = text.strip().partition(":")
        provider = provider.lower()
        if provider not in PROVIDERS:
            raise ConfigError(f"unknown model {text!r}", hint=model_hint(text))
        return cls(provider, name or None)

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}" if self.name else self.provider


def model_hint(text: object) -> str:
    """Say which model values are accepted, and where an endpoint's model is named."""
    forms = "none, local, local:<file.gguf>, openai:<model> or auto"
    name = str(text).strip() if isinstance(text, str) else ""
    example = f"openai:{name}" if name and ":" not in name else "openai:gpt-4o-mini"
    return (
        f"a model is {forms}; a model served by an OpenAI-compatible endpoint is named "
        f"openai:<model> (e.g. {example}), the endpoint set by OPENAI_BASE_URL or, for "
        "OpenAI, OPENAI_API_KEY (or openai_base_url / openai_api_key in the config file)"
    )


def default_data_dir(env: Mapping[str, str]) -> Path:
    """Return the data directory named by the environment, or the platform default."""
    if env.get("AGENTMEM_HOME"):
        return Path(env["AGENTMEM_HOME"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "agentmem"


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """Return the cache folder named by the environment, or the platform default.

    It holds what can be rebuilt (the embedding model's ONNX export), so it is not the
    data directory: deleting it loses nothing.
    """
    if env.get("AGENTMEM_CACHE_DIR"):
        return Path(env["AGENTMEM_CACHE_DIR"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "agentmem"


def login_user() -> str:
    """Return the user id used when none is configured: the login name (or ``"me"``)."""
    try:
        return getpass.getuser() or "me"
    except (KeyError, OSError):
        return "me"


# -- field types: pydantic coerces (an environment variable is always text) and these check --


def _model_spec(value: Any) -> ModelSpec:
    if isinstance(value, ModelSpec):
        return value
    if not isinstance(value, str):
        raise ValueError(f"model must be text such as 'openai:<model>', not {value!r}")
    try:
        return ModelSpec.parse(value)
    except ConfigError as exc:  # the hint is said once, by _config_error
        raise ValueError(exc.args[0]) from exc


def _store_names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(s, str) for s in items):
        raise ValueError(f"stores must be structure names, not {value!r}")
    stores = tuple(s.strip() for s in items if s.strip())
    if not stores:
        raise ValueError("no memory structure configured, e.g. stores = ['turns']")
    return stores


def _folder(value: Path) -> Path:
    if "\x00" in str(value):
        raise ValueError("data_dir contains a NUL character")
    return value.expanduser()


def _optional_folder(value: Path | None) -> Path | None:
    if value is not None and "\x00" in str(value):
        raise ValueError("cache_dir contains a NUL character")
    return None if value is None else value.expanduser()


def _seconds(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"timeout must be a non-negative number, got {value!r}")
    return value


def _one_of(name: str, allowed: tuple[str, ...]) -> BeforeValidator:
    # Before pydantic's own Literal check, so the message names the field and its choices.
    def check(value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"{name} must be {', '.join(allowed[:-1])} or {allowed[-1]}")
        return value

    return BeforeValidator(check)


Count = Annotated[int, Field(ge=0)]
Text = Annotated[str, Field(strict=True)]
OptionalText = Annotated[str | None, Field(strict=True)]


@validated_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Config:
    """Everything needed to build an agent. Build it with :func:`load_config`.

    Raises:
        pydantic.ValidationError: A field has a bad value (:func:`load_config` turns this
            into a :class:`~agentmem.errors.ConfigError` that names the source).
    """

    data_dir: Annotated[Path, AfterValidator(_folder)]
    model: Annotated[ModelSpec, BeforeValidator(_model_spec)] = ModelSpec()
    embedder: Text = "minilm"
    #: Where rebuildable files go (the ONNX export of the embedding model); ``None``: the
    #: default of :func:`default_cache_dir`.
    cache_dir: Annotated[Path | None, AfterValidator(_optional_folder)] = None
    stores: Annotated[tuple[str, ...], BeforeValidator(_store_names)] = ("turns",)
    user_id: Text = "me"
    openai_api_key: OptionalText = None
    openai_base_url: OptionalText = None
    openai_model: Text = DEFAULT_OPENAI_MODEL
    database_url: OptionalText = None
    chroma_url: OptionalText = None
    timeout: Annotated[float, AfterValidator(_seconds)] = 60.0
    #: Retries after a failed model or embedder call (the first call not counted).
    max_retries: Count = 2
    context_tokens: Count = 3000
    memory_tokens: Count = 1000
    recent_turns: Count = 8
    #: Items recalled per query; 0 would recall nothing and answer without memory.
    recall_k: Annotated[int, Field(ge=1)] = 10
    system_prompt: OptionalText = None
    #: Build memory with the chat model: "auto" (only with an OpenAI-compatible endpoint;
    #: the tiny local model is bad at extraction), "yes" or "no" (offline builders).
    model_builders: Annotated[
        Literal["auto", "yes", "no"], _one_of("model_builders", ("auto", "yes", "no"))
    ] = "auto"
    #: Track facts and invalidate superseded ones (the consistency layer).
    facts: bool = True
    #: Recall a second time with what the first recall found.
    iterative_recall: bool = False
    #: How recall merges the structures' rankings: "lead" (the fact ledger and the first
    #: structure lead, the others fill the room they leave) or "rank" (every structure an
    #: equal say, by reciprocal rank fusion).
    fusion: Annotated[Fusion, _one_of("fusion", FUSIONS)] = "lead"
    #: Open the data folder for reading only (it need not be writable): searching, listing
    #: and exporting work, a write raises ReadOnlyError. SQLite records and the embedded
    #: vector index only.
    read_only: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def records_url(self) -> str:
        """The SQLAlchemy URL of the records database."""
        return self.database_url or f"sqlite:///{self.data_dir / 'agentmem.sqlite'}"

    @property
    def vectors_path(self) -> Path:
        """The folder of the embedded chromadb."""
        return self.data_dir / "chroma"

    @property
    def retries(self) -> int:
        """Calls in all, the first one included: what the deprecated key ``retries`` meant."""
        return self.max_retries + 1


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file.

    Raises:
        ConfigError: The file is unreadable or not valid TOML.
    """
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: not UTF-8 (invalid byte at offset {exc.start})"
        ) from exc
    except ValueError as exc:  # a path with a NUL character
        raise ConfigError(f"cannot read config file {path!r}: {exc}") from exc
    section = data.get("agentmem", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [agentmem] must be a table")
    return dict(section)


class _Source:
    """Where values came from, to name it in an error and say where to fix it."""

    def __init__(self, description: str, hint: str, keys: Mapping[str, str] | None = None) -> None:
        self.description = description
        self.hint = hint
        self.keys = keys or {}  # field -> the name the source uses for it

    def key(self, field: str) -> str:
        return self.keys.get(field, field)


_OVERRIDES = _Source("the overrides", "pass a valid {key}")


def _renamed(values: dict[str, Any], source: _Source) -> dict[str, Any]:
    """Map the deprecated key ``retries`` (calls in all) onto ``max_retries``."""
    if "retries" not in values:
        return values
    values = dict(values)
    attempts = values.pop("retries")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise ConfigError(
            f"bad value for retries in {source.description}: {attempts!r}",
            hint="retries is deprecated: set max_retries, the retries after the first call",
        )
    logger.warning(
        "%s: the key 'retries' (calls in all) is deprecated; use max_retries = %d",
        source.description,
        max(attempts - 1, 0),
    )
    values.setdefault("max_retries", max(attempts - 1, 0))
    return values


def _build(layers: list[tuple[_Source, dict[str, Any]]]) -> Config:
    """Merge ``layers`` (lowest precedence first) and validate them into a :class:`Config`.

    Raises:
        ConfigError: A key is unknown or a value bad; it names the source that set it.
    """
    values: dict[str, Any] = {}
    origin: dict[str, _Source] = {}
    for source, layer in layers:
        for key, value in _renamed(layer, source).items():
            values[key], origin[key] = value, source
    try:
        return Config(**values)
    except ValidationError as exc:
        raise _config_error(exc, values, origin) from None


def _config_error(
    exc: ValidationError, values: Mapping[str, Any], origin: Mapping[str, _Source]
) -> ConfigError:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "?"
    source = origin.get(field, _OVERRIDES)
    key = source.key(field)
    hint = source.hint.format(key=key)
    if error["type"] == "unexpected_keyword_argument":
        known = sorted(f.name for f in dataclasses.fields(Config))
        return ConfigError(
            f"unknown key {key!r} in {source.description}", hint=f"known keys: {known}"
        )
    value = values.get(field)
    cause = (error.get("ctx") or {}).get("error")
    if error["type"] == "value_error" and cause is not None:
        if field == "model":  # "pass a valid model" would add nothing to the line above it
            hint = f"{model_hint(value)}; {hint}" if source is not _OVERRIDES else model_hint(value)
        return ConfigError(f"{cause} (in {source.description}, key {key})", hint=hint)
    reason = error["msg"][:1].lower() + error["msg"][1:]
    return ConfigError(
        f"bad value for {key} in {source.description}: {value!r} ({reason})", hint=hint
    )


def load_config(
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    chat_choices: bool = False,
    **overrides: Any,
) -> Config:
    """Build the configuration from defaults, a TOML file, the environment and overrides.

    Args:
        env: The environment to read (``os.environ`` by default).
        config_file: A TOML file; default ``$AGENTMEM_CONFIG`` or ``<data dir>/config.toml``
            if it exists. Its keys are :class:`Config` fields, at top level or under
            ``[agentmem]``.
        chat_choices: Take the structures last chosen in the chat app for the data
            folder (:func:`agentmem.appfiles.read_choices`) over the built-in default;
            the config file, the environment and the overrides still win.
        **overrides: Field values that win over everything else (``None`` is ignored).

    Raises:
        ConfigError: A value, key or file is invalid; it names the key and its source.
    """
    env = os.environ if env is None else env
    overrides = {k: v for k, v in overrides.items() if v is not None}
    data_dir = overrides.get("data_dir") or default_data_dir(env)
    path = config_file or env.get("AGENTMEM_CONFIG")
    if path is None and (Path(data_dir) / "config.toml").is_file():
        path = Path(data_dir) / "config.toml"
    defaults = {
        "data_dir": default_data_dir({**env, "AGENTMEM_HOME": ""}),
        "user_id": login_user(),
    }
    layers = [(_Source("the defaults", "report this: a default is invalid"), defaults)]
    if chat_choices:
        from agentmem.appfiles import CHOICES_FILE, read_choices

        where = Path(data_dir) / CHOICES_FILE
        saved = {k: v for k, v in read_choices(Path(data_dir)).items() if k == "stores"}
        layers.append((_Source(f"the chat app's choices ({where})", f"delete {where}"), saved))
    if path is not None:
        source = _Source(f"config file {path}", f"fix {{key}} in {path}")
        layers.append((source, read_toml(Path(path))))
    named = {field: variable for variable, field in ENVIRONMENT.items() if env.get(variable)}
    environment = _Source("the environment", "fix or unset {key}", named)
    layers.append((environment, {field: env[variable] for field, variable in named.items()}))
    layers.append((_OVERRIDES, overrides))
    return _build(layers)


def with_overrides(config: Config, **overrides: Any) -> Config:
    """Return ``config`` with some fields replaced (validated like :func:`load_config`).

    Raises:
        ConfigError: An override is unknown or has a bad value.
    """
    current = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    given = {k: v for k, v in overrides.items() if v is not None}
    return _build([(_Source("the configuration", ""), current), (_OVERRIDES, given)])
