"""Config: defaults, TOML/YAML files, command-line overrides, errors that name the key."""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib

import pytest

from fusionrec import settings
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
        ("retrieval.kk=3", "override: retrieval.kk: unknown key"),
        ("retrieval.k=many", "retrieval.k: expected an integer"),
        ("nosection.k=1", "unknown section [nosection]"),
        ("retrieval=1", "expected section.key=value"),
        ("data.generated_media=maybe", "expected true/false"),
        ("eval.bpr_dim=8", "eval.bpr_dim was renamed eval.collab_dim"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])


def test_a_file_setting_a_key_that_changed_meaning_is_warned(tmp_path, caplog):
    old = tmp_path / "old.toml"
    old.write_text("[eval]\nhistory_len = 20\n")  # before the rename this set the baselines' history
    with caplog.at_level("WARNING", logger="fusionrec.config"):
        cfg = load_config(old)
    assert cfg.eval.history_len == 20
    assert "old.toml: eval.history_len is the LLM prompt's watched items" in caplog.text
    assert "eval.example_history" in caplog.text
    caplog.clear()
    both = tmp_path / "new.toml"
    both.write_text("[eval]\nhistory_len = 8\nexample_history = 20\n")
    with caplog.at_level("WARNING", logger="fusionrec.config"):
        load_config(both)
    assert "history_len" not in caplog.text


def test_bad_file_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[nope]\nx = 1\n")
    with pytest.raises(ConfigError, match="bad.toml: unknown section"):
        load_config(path)
    with pytest.raises(ConfigError, match="file not found"):
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


# --- one loader for the app config, recipes and checkpoints ------------------------------------------
def test_one_loader_reads_toml_config_and_yaml_recipe_with_the_same_coercion_and_errors(tmp_path):
    from fusionrec.finetune.recipe import Recipe, RecipeError, load_recipe

    toml, yaml_ = tmp_path / "c.toml", tmp_path / "r.yaml"
    toml.write_text('[retrieval]\nk = "12"\ntext_blocks = "text, tfidf"\n')
    yaml_.write_text("train:\n  max_steps: '12'\nlora:\n  target_modules: q_proj, v_proj\n")
    cfg, recipe = settings.load(Config, toml), settings.load(Recipe, yaml_)
    assert cfg.retrieval.k == recipe.train.max_steps == 12  # the same string -> int coercion
    assert cfg.retrieval.text_blocks == ["text", "tfidf"] and recipe.lora.target_modules == ["q_proj", "v_proj"]
    toml.write_text("[retrieval]\nk = 1.5\n")
    yaml_.write_text("train:\n  max_steps: 1.5\n")
    with pytest.raises(ConfigError, match=r"c\.toml: retrieval\.k: expected an integer, got 1\.5"):
        settings.load(Config, toml)
    with pytest.raises(RecipeError, match=r"r\.yaml: train\.max_steps: expected an integer, got 1\.5"):
        load_recipe(yaml_)
    toml.write_text("[retrieval]\nkay = 1\n")
    yaml_.write_text("train:\n  kay: 1\n")
    with pytest.raises(ConfigError, match=r"c\.toml: retrieval\.kay: unknown key \(known: fusion"):
        load_config(toml)
    with pytest.raises(RecipeError, match=r"r\.yaml: train\.kay: unknown key \(known: max_steps"):
        load_recipe(yaml_)


def test_recipe_overrides_use_the_config_syntax():
    from fusionrec.finetune.recipe import RecipeError, load_recipe

    recipe = load_recipe("tiny_smoke", ["train.max_steps=3", "tasks.weights.explanation=0.5", "data.redial=no"])
    assert recipe.train.max_steps == 3 and recipe.tasks.weights["explanation"] == 0.5 and recipe.data.redial is False
    assert load_recipe("tiny_smoke", {"train.max_steps": 3}).train == recipe.train  # the same from code
    with pytest.raises(RecipeError, match=r"override: train\.max_step: unknown key"):
        load_recipe("tiny_smoke", ["train.max_step=3"])
    with pytest.raises(RecipeError, match="expected section.key=value"):
        load_recipe("tiny_smoke", ["max_steps"])


@pytest.mark.parametrize("words", [["--set", "train.max_steps:3"], ["--set=train.max_steps:3"], ["train.max_steps:3"]])
def test_the_old_set_form_is_one_clear_error(words, capsys):
    from fusionrec.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["finetune", "--recipe", "tiny_smoke", *words])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`--set KEY:VALUE` is gone" in err and "train.max_steps=10" in err


def test_cli_routes_recipe_sections_to_the_command_and_the_rest_to_the_config():
    from fusionrec.cli import parse_command_line

    argv = ["finetune", "--recipe", "tiny_smoke", "train.max_steps=3", "data.max_users=4", "retrieval.k=7"]
    args, config_words = parse_command_line(argv)
    assert args.overrides == ["train.max_steps=3", "data.max_users=4"] and config_words == ["retrieval.k=7"]
    args, config_words = parse_command_line(["search", "a drama", "data.dataset=x", "retrieval.k=7"])
    assert args.overrides == [] and config_words == ["data.dataset=x", "retrieval.k=7"]  # the config's here


def test_a_checkpoint_recipe_round_trips_through_the_loader(tmp_path):
    import yaml

    from fusionrec.agent.adapter import SHIPPED_ADAPTER
    from fusionrec.agent.checkpoint import RECIPE_FILE, TrainedOn, read_adapter_recipe, training_prompt
    from fusionrec.finetune.recipe import load_recipe, load_saved_recipe

    recipe = load_recipe("ranker_cpu", ["train.max_steps=7"])
    trained_on = TrainedOn(base_model="smollm2-135m-instruct", profile="offline", dtype="float32",
                           placeholder_token_id=16, template="compact")  # fmt: skip
    text = yaml.safe_dump({"trained_on": dataclasses.asdict(trained_on), **recipe.to_dict()}, sort_keys=False)
    (tmp_path / RECIPE_FILE).write_text(text)  # what the trainer writes into each checkpoint
    saved = load_saved_recipe(tmp_path)
    assert saved.trained_on == trained_on and saved.to_dict() == {
        "trained_on": dataclasses.asdict(trained_on), **recipe.to_dict()
    }
    assert read_adapter_recipe(tmp_path).trained_on == trained_on
    assert training_prompt(tmp_path)["max_prompt_tokens"] == recipe.data.max_prompt_tokens
    shipped = load_saved_recipe(SHIPPED_ADAPTER)  # the shipped adapter's config.yaml reads strictly
    assert shipped.data.collab_dim == 32 and shipped.trained_on.base_model == "smollm2-135m-instruct"
    (tmp_path / RECIPE_FILE).write_text(text.replace("max_prompt_tokens: 640", "max_prompt_tokens: many"))
    with pytest.raises(ValueError, match=r"config\.yaml: data\.max_prompt_tokens: expected an integer"):
        training_prompt(tmp_path)


def test_adapter_settings_show_in_config_show_and_leave_the_shared_config_alone(tmp_path):
    from fusionrec.agent.adapter import effective_config
    from fusionrec.agent.commands import show_config

    (tmp_path / "config.yaml").write_text("data:\n  template: compact\n  max_prompt_tokens: 640\n  overview_chars: 200\n")
    cfg = load_config(None, [f"agent.adapter={tmp_path}"])
    before = copy.deepcopy(cfg)
    eff = effective_config(cfg)  # what Agent(cfg) runs with
    assert eff.from_adapter == {"template": "compact", "max_prompt_tokens": 640}  # overview_chars: the same
    assert (eff.cfg.agent.template, eff.cfg.agent.max_prompt_tokens) == ("compact", 640)
    assert cfg == before and eff.cfg.retrieval is cfg.retrieval  # the caller's config is not changed
    out = show_config(cfg)  # `fusionrec config show agent.adapter=...`
    assert f'template = "compact"  # from the adapter ({tmp_path}); the config says "default"' in out
    assert "max_prompt_tokens = 640  # from the adapter" in out
    assert "overview_chars = 200\n" in out and "[retrieval]" in out
    shown = tomllib.loads(out)  # the output is a config file
    assert shown["agent"]["template"] == "compact" and shown["retrieval"] == dataclasses.asdict(cfg.retrieval)
