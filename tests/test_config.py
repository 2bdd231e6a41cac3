"""Configuration: defaults, TOML, environment, overrides, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmem.config import Config, ModelSpec, load_config
from agentmem.errors import ConfigError
from agentmem.factory import resolve_model


def test_defaults_use_the_data_home(tmp_path: Path) -> None:
    config = load_config(env={"XDG_DATA_HOME": str(tmp_path)})
    assert config.data_dir == tmp_path / "agentmem"
    assert config.model == ModelSpec("auto")
    assert config.stores == ("turns",)
    assert config.records_url == f"sqlite:///{tmp_path / 'agentmem' / 'agentmem.sqlite'}"


def test_precedence_toml_then_env_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[agentmem]\nmodel = "none"\nstores = ["turns"]\nuser_id = "from-toml"\nrecall_k = 4\n'
    )
    env = {"AGENTMEM_HOME": str(tmp_path), "AGENTMEM_USER": "from-env"}
    config = load_config(env=env)
    assert config.model == ModelSpec("none") and config.recall_k == 4
    assert config.user_id == "from-env"
    config = load_config(env=env, user_id="from-flag", model="openai:gpt-4o")
    assert config.user_id == "from-flag"
    assert config.model == ModelSpec("openai", "gpt-4o")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nonsense = 1\n", "unknown key 'nonsense'"),
        ('recall_k = "many"\n', "bad value for recall_k"),
        ('model = "gpt9"\n', "unknown model"),
        ("stores = []\n", "no memory structure"),
        ('fusion = "rrf"\n', "fusion must be lead or rank"),
    ],
)
def test_bad_values_are_config_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(env={"AGENTMEM_HOME": str(tmp_path)}, config_file=path)


def test_auto_provider_prefers_an_openai_endpoint(tmp_path: Path) -> None:
    env = {"AGENTMEM_HOME": str(tmp_path), "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}
    assert resolve_model(load_config(env=env)).provider == "openai"


def test_auto_provider_without_endpoint_is_local_or_none(tmp_path: Path) -> None:
    from agentmem.models.local_model import local_model_available

    spec = resolve_model(load_config(env={"AGENTMEM_HOME": str(tmp_path)}))
    assert spec.provider == ("local" if local_model_available() else "none")


def test_config_is_immutable(tmp_path: Path) -> None:
    config = load_config(env={"AGENTMEM_HOME": str(tmp_path)})
    with pytest.raises(AttributeError):
        config.user_id = "x"  # type: ignore[misc]
    assert isinstance(config, Config)


def test_fusion_is_lead_unless_set_to_rank(tmp_path: Path) -> None:
    env = {"AGENTMEM_HOME": str(tmp_path)}
    assert load_config(env=env).fusion == "lead"
    assert load_config(env={**env, "AGENTMEM_FUSION": "rank"}).fusion == "rank"
