"""Learning methods as units: each built-in one behind the same protocol, fast paths equal
to autograd, `--method` naming a built-in or a user's class, the README's example working."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import streams
from lifelong import cli
from lifelong.config import ConfigError, RunConfig
from lifelong.learner.agent import Agent, StreamSpec
from lifelong.learner.methods import METHODS, Update, method_class, resolve
from lifelong.learner.models import build_model
from lifelong.runner import run

README = Path(__file__).resolve().parents[1] / "README.md"


def _batch(seed: int = 0, with_memory: bool = True) -> Update:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(10, 1, 8, 8, generator=g), torch.randint(0, 4, (10,), generator=g)
    if not with_memory:
        return Update(x, y)
    xm, ym = torch.rand(10, 1, 8, 8, generator=g), torch.randint(0, 10, (10,), generator=g)
    zm = torch.randn(10, 10, generator=g)
    return Update(x, y, xm, ym, torch.full((10,), -1), zm)


@pytest.mark.parametrize("name", ["er", "der++", "er-ace"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_closed_form_fast_path_equals_autograd(name, model):
    """The same update through the closed form and through plain autograd."""
    results = []
    for closed_form in (True, False):
        torch.manual_seed(0)
        net = build_model(model, (1, 8, 8), 10, 32)
        cls = METHODS[name]
        method = cls(net, cls.settings_from({"closed_form": closed_form, "distill": 0.5}))
        step = method.update(_batch())
        weights = [w.detach().clone() for w in net.parameters()]
        results.append((step.loss, step.logits, step.features, step.all_logits, weights))
    (la, za, fa, aa, wa), (lb, zb, fb, ab, wb) = results
    assert torch.allclose(la, lb, atol=1e-5) and torch.allclose(za, zb, atol=1e-5)
    # the forward pass the controller learns from: every row's embedding and logits
    assert fa.shape == (20, net.embedding_dim) and torch.allclose(fa, fb, atol=1e-5)
    assert torch.allclose(aa, ab, atol=1e-5) and torch.equal(aa[:10], za)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(wa, wb))


def test_auto_keeps_the_old_flags_meaning():
    assert resolve(RunConfig().to_dict()) == "der++"
    assert resolve(RunConfig(learned_rates=True).to_dict()) == "lamaml"
    assert resolve(RunConfig(ace=True).to_dict()) == "er-ace"
    assert resolve(RunConfig(distill=0.0).to_dict()) == "er"
    assert resolve(RunConfig(method="er").to_dict()) == "er"


@pytest.mark.parametrize("flags, method", [({}, "der++"), ({"learned_rates": True}, "lamaml")])
def test_naming_the_method_gives_the_same_numbers_as_its_flags(tmp_path, flags, method):
    base = dict(stream="split-digits", experiences=2, progress=False, tensorboard=False)
    a = run(RunConfig(**base, **flags), tmp_path / "flags", echo=lambda m: None)
    b = run(RunConfig(**base, method=method), tmp_path / "named", echo=lambda m: None)
    assert np.array_equal(a.matrix, b.matrix, equal_nan=True)


def test_a_methods_settings_come_from_the_config_by_name():
    settings = METHODS["lamaml"].settings_from(RunConfig(inner_steps=3, lr=9.0).to_dict())
    assert settings.inner_steps == 3 and not hasattr(settings, "lr")


@pytest.mark.parametrize(
    "name, needle",
    [
        ("sgd", "method must be one of"),
        ("nosuchmodule:X", "cannot load method"),
        ("lifelong.config:RunConfig", "not a subclass"),
    ],
)
def test_bad_method_names_are_refused(name, needle):
    with pytest.raises(ConfigError, match=needle):
        cfg = RunConfig(method=name).validate()
        method_class(resolve(cfg.to_dict()))


def test_controller_with_another_method_is_refused():
    with pytest.raises(ConfigError, match="cannot go with method 'er'"):
        RunConfig(learned_rates=True, method="er").validate()


def test_the_readme_method_runs(tmp_path, monkeypatch, capsys):
    """The README's 20-line method, saved as mymod.py, run by `lifelong run --method`."""
    section = README.read_text().split("## Write your own method")[1]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)[:1]
    (tmp_path / "mymod.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))  # undo the cwd insert
    args = ["run", "--stream", "split-digits", "--experiences", "2", "--no-progress"]
    assert cli.main([*args, "--method", "mymod:SmoothReplay", "--out", "runs/mine"]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"average accuracy\s+([\d.]+)", out).group(1))
    assert accuracy > 0.8  # it learns, replaying: both experiences remembered


def test_every_method_learns_two_experiences():
    """Each built-in method through the same agent loop remembers its first experience."""
    s = streams.get_stream("split-digits", experiences=2, seed=0)
    spec = StreamSpec(s.input_shape, s.n_classes, False, s.scenario)
    for name in METHODS:
        cfg = RunConfig(method=name, memory=100, iters=2).validate()
        agent = Agent(cfg, spec, Agent.memory_for(cfg, spec))
        for e in s:
            for b in range(0, e.n_train, 10):
                agent.observe(e.x_train[b : b + 10], e.y_train[b : b + 10], experience=e.id)
            agent.end_experience(e.id)
        assert agent.accuracy(s[0].x_test, s[0].y_test) > 0.6, name
        assert agent.accuracy(s[1].x_test, s[1].y_test) > 0.6, name
