"""Run config: sections in TOML ([run], [learner], [method]), flat files still load, and the
learner's own config carries nothing of the run."""

from __future__ import annotations

import dataclasses

import pytest

from lifelong.config import SECTIONS, ConfigError, RunConfig
from lifelong.learner.config import LearnerConfig
from lifelong.learner.methods import METHODS


def test_toml_has_sections_and_round_trips(tmp_path):
    cfg = RunConfig(
        stream="split-digits",
        lr=0.05,
        memory=200,
        method="tests.method_helpers:Smooth",
        method_options={"smoothing": 0.2},
    )
    text = cfg.dumps()
    assert text.index("[run]") < text.index("[learner]") < text.index("[method]")
    assert "smoothing = 0.2" in text.split("[method]")[1]
    (tmp_path / "c.toml").write_text(text)
    assert RunConfig.load(tmp_path / "c.toml") == cfg


def test_every_flag_is_in_exactly_one_section():
    keys = [k for keys in SECTIONS.values() for k in keys]
    flags = {f.name for f in dataclasses.fields(RunConfig)} - {"method_options"}
    assert sorted(keys) == sorted(flags)


def test_old_flat_config_files_still_load(tmp_path):
    (tmp_path / "flat.toml").write_text('stream = "split-digits"\nlr = 0.05\ncontroller = true\n')
    with pytest.warns(FutureWarning, match="'controller' is now 'learned_rates'"):
        cfg = RunConfig.load(tmp_path / "flat.toml")
    assert cfg.lr == 0.05 and cfg.learned_rates and cfg.learner().method == "lamaml"


def test_the_renamed_controller_key_reads_in_its_section_and_as_a_flag(tmp_path, capsys):
    """``controller`` named two things; La-MAML's is ``learned_rates`` now, and a config
    saved with the old name (a run folder's) still loads, as does the old flag."""
    from lifelong.cli import build_parser
    from lifelong.run_cli import config_from_args

    (tmp_path / "old.toml").write_text("[method]\ncontroller = true\n")
    with pytest.warns(FutureWarning):
        assert RunConfig.load(tmp_path / "old.toml").learned_rates
    assert "controller" not in RunConfig().dumps()  # written under the new name only
    args = build_parser().parse_args(["run", "--out", str(tmp_path / "r"), "--controller"])
    assert config_from_args(args).learned_rates
    (tmp_path / "both.toml").write_text("controller = true\nlearned_rates = false\n")
    with pytest.raises(ConfigError, match="'controller' .* and 'learned_rates' disagree"):
        RunConfig.load(tmp_path / "both.toml")


def test_a_key_in_the_wrong_section_names_its_section(tmp_path):
    (tmp_path / "c.toml").write_text('[learner]\nstream = "split-digits"\n')
    with pytest.raises(
        ConfigError, match=r"unknown key 'stream' in \[learner\]; it belongs in \[run\]"
    ):
        RunConfig.load(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text("[trainer]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match="unknown config section"):
        RunConfig.load(tmp_path / "c.toml")


def test_the_learner_config_holds_no_run_keys():
    learner = RunConfig(stream="split-digits", checkpoint_every=7, lr=0.3).learner()
    names = {f.name for f in dataclasses.fields(LearnerConfig)}
    assert not names & {"stream", "follow", "checkpoint_every", "progress", "batch_size"}
    assert learner.method == "der++"
    settings = METHODS["der++"].settings_from(learner.method_values)
    assert settings.lr == 0.3


def test_method_options_reach_a_users_method(tmp_path):
    """A [method] key no built-in setting has goes to the method's own settings."""
    from lifelong.learner.methods import Method

    @dataclasses.dataclass
    class MySettings:
        lr: float = 0.1
        smoothing: float = 0.0

    class Mine(Method):
        Settings = MySettings

    learner = RunConfig(lr=0.2, method_options={"smoothing": 0.3}).learner()
    s = Mine.settings_from(learner.method_values)
    assert (s.lr, s.smoothing) == (0.2, 0.3)


def test_a_users_method_settings_load_flat_and_a_setting_no_method_has_is_refused(tmp_path):
    """Flat TOML (every key at the top) takes a user method's own keys; a key that is neither
    a run setting nor the method's is refused naming the method's settings, never recorded."""
    mine = 'method = "tests.method_helpers:Smooth"\n'
    (tmp_path / "flat.toml").write_text(mine + "smoothing = 0.3\nlr = 0.2\n")
    cfg = RunConfig.load(tmp_path / "flat.toml")
    assert cfg.method_options == {"smoothing": 0.3} and cfg.lr == 0.2
    (tmp_path / "typo.toml").write_text(mine + "smoothng = 0.3\n")
    with pytest.raises(ConfigError, match=r"\['smoothng'\].*its settings: \['lr', 'smoothing'\]"):
        RunConfig.load(tmp_path / "typo.toml")
    with pytest.raises(ConfigError, match=r"method 'der\+\+' has no such setting"):
        RunConfig.from_dict({"method": "der++", "smoothing": 0.3})
    with pytest.raises(ConfigError, match=r"method 'der\+\+' has no such setting"):
        RunConfig(method_options={"smoothing": 0.3}).validate()


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_a_weight_average_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ConfigError, match=r"average_weights is a decay in \[0, 1\)"):
        RunConfig(average_weights=decay).validate()
    assert RunConfig(average_weights=0.0).validate().learner().average_weights == 0.0
