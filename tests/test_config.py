"""Configuration: defaults, TOML, environment, overrides, in that order."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentmem.config import Config, ModelSpec, load_config
from agentmem.errors import ConfigError, ModelResponseError
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


def test_auto_provider_without_endpoint_is_recall_only_even_with_the_local_model(
    tmp_path: Path,
) -> None:
    # auto never picks the 135M demo model (issue 35): it is used only when asked for.
    spec = resolve_model(load_config(env={"AGENTMEM_HOME": str(tmp_path)}))
    assert spec.provider == "none"
    asked = load_config(env={"AGENTMEM_HOME": str(tmp_path)}, model="local")
    assert resolve_model(asked) == ModelSpec("local")


def test_config_is_immutable(tmp_path: Path) -> None:
    config = load_config(env={"AGENTMEM_HOME": str(tmp_path)})
    with pytest.raises(AttributeError):
        config.user_id = "x"  # type: ignore[misc]
    assert isinstance(config, Config)


def test_fusion_is_lead_unless_set_to_rank(tmp_path: Path) -> None:
    env = {"AGENTMEM_HOME": str(tmp_path)}
    assert load_config(env=env).fusion == "lead"
    assert load_config(env={**env, "AGENTMEM_FUSION": "rank"}).fusion == "rank"


def test_each_source_overrides_the_one_below(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'data_dir = "{tmp_path / "from-toml"}"\nfusion = "rank"\nuser_id = "from-toml"\n'
    )
    defaults = load_config(env={"XDG_DATA_HOME": str(tmp_path)})
    assert defaults.data_dir == tmp_path / "agentmem" and defaults.fusion == "lead"

    from_toml = load_config(env={}, config_file=home / "config.toml")
    assert from_toml.data_dir == tmp_path / "from-toml" and from_toml.fusion == "rank"

    env = {"AGENTMEM_HOME": str(home), "AGENTMEM_FUSION": "lead"}
    from_env = load_config(env=env)
    assert from_env.data_dir == home  # the environment beats the file it points to
    assert (from_env.fusion, from_env.user_id) == ("lead", "from-toml")

    from_flags = load_config(env=env, data_dir=tmp_path / "flag", fusion="rank")
    assert (from_flags.data_dir, from_flags.fusion) == (tmp_path / "flag", "rank")


def test_a_bad_value_names_its_key_and_source(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[agentmem]\nmemory_tokens = -5\n")
    with pytest.raises(ConfigError) as in_file:
        load_config(env={}, config_file=path)
    assert "memory_tokens" in str(in_file.value) and f"config file {path}" in str(in_file.value)
    assert in_file.value.hint == f"fix memory_tokens in {path}"

    with pytest.raises(ConfigError) as in_env:
        load_config(env={"AGENTMEM_HOME": str(tmp_path), "AGENTMEM_MODEL_BUILDERS": "maybe"})
    assert "model_builders must be auto, yes or no" in str(in_env.value)
    assert "AGENTMEM_MODEL_BUILDERS" in str(in_env.value)
    assert in_env.value.hint == "fix or unset AGENTMEM_MODEL_BUILDERS"

    with pytest.raises(ConfigError) as in_flags:
        load_config(env={}, data_dir=tmp_path, timeout="soon")
    assert "bad value for timeout in the overrides: 'soon'" in str(in_flags.value)
    assert in_flags.value.hint == "pass a valid timeout"


@pytest.mark.parametrize("source", ["file", "override"])
def test_recall_k_of_zero_is_refused(tmp_path: Path, source: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text("recall_k = 0\n" if source == "file" else "")
    with pytest.raises(ConfigError, match="bad value for recall_k"):
        load_config(
            env={}, config_file=path, data_dir=tmp_path, recall_k=0 if source != "file" else None
        )


def test_max_retries_counts_retries_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agentmem.factory import build_model
    from agentmem.testing import FakeOpenAIServer, Fault
    from agentmem.types import Message

    with FakeOpenAIServer() as server:
        config = load_config(
            env={}, data_dir=tmp_path, model="openai:fake-chat", openai_base_url=server.base_url
        )
        assert config.max_retries == 2
        config = load_config(
            env={},
            data_dir=tmp_path,
            model="openai:fake-chat",
            openai_base_url=server.base_url,
            max_retries=1,
        )
        model = build_model(config)
        assert model is not None
        server.script("recovered")
        server.fail(Fault.status(500))
        with caplog.at_level(logging.WARNING):
            assert model.complete([Message("user", "hi")]).text == "recovered"
        server.fail(Fault.status(500), Fault.status(500))
        with pytest.raises(ModelResponseError):
            model.complete([Message("user", "hi")])
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and all("retry 1 of 1" in line for line in retries)
    assert len(server.chat_requests()) == 4  # 2 calls of 2 attempts


def test_the_old_retries_key_still_counts_calls_and_is_deprecated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("retries = 3\n")
    with caplog.at_level(logging.WARNING, logger="agentmem.config"):
        config = load_config(env={}, config_file=path, data_dir=tmp_path)
    assert config.max_retries == 2
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "agentmem.config"]
    assert "'retries' (calls in all) is deprecated; use max_retries = 2" in warning
    assert str(path) in warning
