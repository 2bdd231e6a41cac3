"""Configuration: the one place that reads the environment and the TOML file.

Precedence, lowest first: built-in defaults, the TOML file, environment variables,
explicit overrides (command-line flags or keyword arguments). Nothing is read at import.

Environment variables:
    AGENTMEM_HOME         data directory (default: $XDG_DATA_HOME/agentmem,
                          else ~/.local/share/agentmem)
    AGENTMEM_CONFIG       path of the TOML file (default: <data dir>/config.toml)
    AGENTMEM_MODEL        none | local | local:<file.gguf> | openai:<model> | auto
    AGENTMEM_EMBEDDER     minilm | openai:<model>
    AGENTMEM_STORES       comma-separated structure names (default: turns)
    AGENTMEM_USER         the user id of the chat app (default: your login name)
    AGENTMEM_DATABASE_URL a SQLAlchemy URL for the records (default: SQLite in the data dir)
    AGENTMEM_CHROMA_URL   a Chroma server URL (default: embedded chromadb in the data dir)
    AGENTMEM_MODEL_BUILDERS  auto | yes | no: build memory with the chat model
    OPENAI_API_KEY, OPENAI_BASE_URL   the OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, ...)
"""

from __future__ import annotations

import getpass
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agentmem.errors import ConfigError
from agentmem.types import FUSIONS, Fusion

PROVIDERS = ("auto", "none", "local", "openai")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
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
            raise ConfigError(
                f"unknown model {text!r}",
                hint="use none, local, local:<file.gguf>, openai:<model> or auto",
            )
        return cls(provider, name or None)

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}" if self.name else self.provider


def default_data_dir(env: Mapping[str, str]) -> Path:
    """Return the data directory named by the environment, or the platform default."""
    if env.get("AGENTMEM_HOME"):
        return Path(env["AGENTMEM_HOME"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "agentmem"


def _default_user() -> str:
    try:
        return getpass.getuser() or "me"
    except (KeyError, OSError):
        return "me"


@dataclass(frozen=True)
class Config:
    """Everything needed to build an agent. Build it with :func:`load_config`."""

    data_dir: Path
    model: ModelSpec = ModelSpec()
    embedder: str = "minilm"
    stores: tuple[str, ...] = ("turns",)
    user_id: str = "me"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = DEFAULT_OPENAI_MODEL
    database_url: str | None = None
    chroma_url: str | None = None
    timeout: float = 60.0
    retries: int = 3
    context_tokens: int = 3000
    memory_tokens: int = 1000
    recent_turns: int = 8
    recall_k: int = 10
    system_prompt: str | None = None
    #: Build memory with the chat model: "auto" (only with an OpenAI-compatible endpoint;
    #: the tiny local model is bad at extraction), "yes" or "no" (offline builders).
    model_builders: str = "auto"
    #: Track facts and invalidate superseded ones (the consistency layer).
    facts: bool = True
    #: Recall a second time with what the first recall found.
    iterative_recall: bool = False
    #: How recall merges the structures' rankings: "lead" (the fact ledger and the first
    #: structure lead, the others fill the room they leave) or "rank" (every structure an
    #: equal say, by reciprocal rank fusion).
    fusion: Fusion = "lead"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records_url(self) -> str:
        """The SQLAlchemy URL of the records database."""
        return self.database_url or f"sqlite:///{self.data_dir / 'agentmem.sqlite'}"

    @property
    def vectors_path(self) -> Path:
        """The folder of the embedded chromadb."""
        return self.data_dir / "chroma"


_INT_FIELDS = {"retries", "context_tokens", "memory_tokens", "recent_turns", "recall_k"}
_FLOAT_FIELDS = {"timeout"}
_BOOL_FIELDS = {"facts", "iterative_recall"}
_ENV = {
    "AGENTMEM_MODEL": "model",
    "AGENTMEM_EMBEDDER": "embedder",
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


def _coerce(name: str, value: Any) -> Any:
    try:
        if name == "model":
            return value if isinstance(value, ModelSpec) else ModelSpec.parse(str(value))
        if name == "stores":
            items = value.split(",") if isinstance(value, str) else list(value)
            if not all(isinstance(s, str) for s in items):
                raise ConfigError(f"stores must be structure names, not {value!r}")
            stores = tuple(s.strip() for s in items if s.strip())
            if not stores:
                raise ConfigError("no memory structure configured", hint="e.g. stores = ['turns']")
            return stores
        if name == "model_builders" and value not in ("auto", "yes", "no"):
            raise ConfigError(f"model_builders must be auto, yes or no, not {value!r}")
        if name == "fusion" and value not in FUSIONS:
            raise ConfigError(f"fusion must be lead or rank, not {value!r}")
        if name == "data_dir":
            if "\x00" in str(value):
                raise ConfigError("data_dir contains a NUL character")
            return Path(str(value)).expanduser()
        if name in _INT_FIELDS:
            number = int(value)
            if number < 0:
                raise ConfigError(f"{name} must not be negative, got {value!r}")
            return number
        if name in _FLOAT_FIELDS:
            real = float(value)
            if not math.isfinite(real) or real < 0:
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
            return real
        if name in _BOOL_FIELDS:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
        raise ConfigError(f"bad value for {name}: {value!r}") from exc
    if name == "extra":
        if not isinstance(value, dict):
            raise ConfigError(f"bad value for extra: {value!r} (expected a table)")
        return value
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"bad value for {name}: {value!r} (expected a string)")
    return value


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


def load_config(
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> Config:
    """Build the configuration from defaults, a TOML file, the environment and overrides.

    Args:
        env: The environment to read (``os.environ`` by default).
        config_file: A TOML file; default ``$AGENTMEM_CONFIG`` or ``<data dir>/config.toml``
            if it exists. Its keys are :class:`Config` fields, at top level or under
            ``[agentmem]``.
        **overrides: Field values that win over everything else (``None`` is ignored).

    Raises:
        ConfigError: A value, key or file is invalid.
    """
    env = os.environ if env is None else env
    known = {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    data_dir = overrides.get("data_dir") or default_data_dir(env)
    path = config_file or env.get("AGENTMEM_CONFIG")
    if path is None and (Path(data_dir) / "config.toml").is_file():
        path = Path(data_dir) / "config.toml"
    if path is not None:
        for key, value in read_toml(Path(path)).items():
            if key not in known:
                raise ConfigError(
                    f"unknown key {key!r} in config file {path}",
                    hint=f"known keys: {sorted(known)}",
                )
            values[key] = value
    for variable, name in _ENV.items():
        if env.get(variable):
            values[name] = env[variable]
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown configuration fields: {sorted(unknown)}")
    values["data_dir"] = values.get("data_dir") or data_dir
    values.setdefault("user_id", _default_user())
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    return Config(**coerced)


def with_overrides(config: Config, **overrides: Any) -> Config:
    """Return ``config`` with some fields replaced (validated like :func:`load_config`)."""
    return replace(config, **{k: _coerce(k, v) for k, v in overrides.items() if v is not None})
