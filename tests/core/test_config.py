"""Config: defaults, TOML/YAML files, command-line overrides, errors that name the key."""

from __future__ import annotations

import dataclasses
import re
import tomllib

import pytest

from fusionrec.config import REPO_ROOT, Config, ConfigError, load_config

EXAMPLE = REPO_ROOT / "configs" / "fusionrec.toml"


def test_defaults_are_offline_and_local():
    cfg = load_config()
    assert cfg.models.profile == "offline"
    assert cfg.ui.host == "127.0.0.1"
    assert cfg.home.name == ".fusionrec"


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[retrieval]\nk = 7\nfusion = "late"\n[agent]\nretrieval_weight = 0.5\n')
    cfg = load_config(path, ["retrieval.k=11", "ui.port=0", "data.generated_media=yes"])
    assert cfg.retrieval.k == 11 and cfg.retrieval.fusion == "late"
    assert cfg.agent.retrieval_weight == 0.5
    assert cfg.ui.port == 0 and cfg.data.generated_media is True


def test_yaml_and_dict_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  profile: tiny\n")
    cfg = load_config(path, ['retrieval.weights={"text": 2, "image": 1}'])
    assert cfg.models.profile == "tiny"
    assert cfg.retrieval.weights == {"text": 2.0, "image": 1.0}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("retrieval.kk=3", "unknown key 'retrieval.kk'"),
        ("retrieval.k=many", "retrieval.k: expected int"),
        ("nosection.k=1", "expected section.key=value"),
        ("data.generated_media=maybe", "expected true/false"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_bad_file_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[nope]\nx = 1\n")
    with pytest.raises(ConfigError, match="bad.toml: unknown section"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


def test_example_config_has_every_key_commented():
    """The shipped example loads, sets every key of every section, and comments each one."""
    load_config(EXAMPLE)
    data = tomllib.loads(EXAMPLE.read_text())
    lines = EXAMPLE.read_text().splitlines()
    for section in dataclasses.fields(Config):
        keys = {f.name for f in dataclasses.fields(getattr(Config(), section.name))}
        assert set(data[section.name]) == keys, f"[{section.name}] in the example differs from the dataclass"
        for key in keys:
            assert any(re.match(rf"^{key}\s*=.*#", ln) for ln in lines), f"{section.name}.{key}: no comment"
