"""Backbones the field uses and your own model: reduced ResNet-18 / ResNet-18, batch norm
handled (one forward pass for incoming and replayed, eval mode for memories and
prediction), and any nn.Module from a factory or passed in Python."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import streams
from lifelong import cli
from lifelong.config import ConfigError, RunConfig
from lifelong.learner.agent import Agent, StreamSpec
from lifelong.learner.agent_memory import FIXED_KEY_DIM
from lifelong.learner.methods import METHODS
from lifelong.learner.models import build_model
from lifelong.learner.resnet import ResNet18
from lifelong.runner import run
from stores import EpisodicStore

# whole runs on ResNets and user models: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind, width", [("reduced-resnet18", 160), ("resnet18", 512)])
def test_resnet18_shapes(kind, width):
    for shape in ((3, 32, 32), (1, 8, 8)):
        net = build_model(kind, shape, 10, 100)
        assert isinstance(net, ResNet18) and net.embedding_dim == width
        x = torch.rand(4, *shape)
        assert net(x).shape == (4, 10) and net.embed(x).shape == (4, width)
    reduced = build_model("reduced-resnet18", (3, 32, 32), 100, 100)
    assert 1.0e6 < sum(p.numel() for p in reduced.parameters()) < 1.2e6  # GEM's ~1.1M


def test_batch_norm_step_is_the_same_through_autograd_and_the_vjp():
    """The fast path (the backbone's vector-Jacobian product) and autograd agree with batch
    norm in the network, incoming and replayed examples in one forward pass."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(10, 1, 8, 8, generator=g), torch.randint(0, 10, (10,), generator=g)
    xm, ym = torch.rand(10, 1, 8, 8, generator=g), torch.randint(0, 10, (10,), generator=g)
    from lifelong.learner.methods import Update

    weights = []
    for closed_form in (True, False):
        torch.manual_seed(0)
        net = build_model("reduced-resnet18", (1, 8, 8), 10, 100)
        method = METHODS["er"](net, METHODS["er"].settings_from({"closed_form": closed_form}))
        method.update(Update(x, y, xm, ym))
        weights.append([w.detach().clone() for w in net.parameters()])
        weights[-1].append(net.features[1].running_mean.clone())
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*weights))


def test_a_resnet_run_learns_and_memories_do_not_move_batch_statistics(tmp_path):
    cfg = RunConfig(
        stream="split-digits",
        experiences=2,
        model="reduced-resnet18",
        iters=1,
        replay_batch=10,
        memory=100,
        progress=False,
        tensorboard=False,
    )
    result = run(cfg, tmp_path / "r", echo=lambda m: None)
    assert result.summary["complete"] and result.matrix[-1].mean() > 0.5, result.matrix
    with EpisodicStore.open(tmp_path / "r" / "memory", readonly=True) as st:
        assert st.spec.dim == 160 and st.verify()["ok"]
    s = streams.get_stream("split-digits", experiences=2, seed=0)
    spec = StreamSpec(s.input_shape, s.n_classes, False, s.scenario)
    learner = cfg.learner()
    agent = Agent(learner, spec, Agent.memory_for(learner, spec))
    agent.observe(s[0].x_train[:10], s[0].y_train[:10])
    bn = agent.model.features[1]
    before = bn.running_mean.clone()
    agent.end_experience(0)  # memory logits and keys: eval mode
    agent.predict(s[0].x_test)
    assert torch.equal(before, bn.running_mean)


FACTORY = """
from torch import nn


def make(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, n_classes))
"""


def test_a_model_factory_from_the_command_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "mymodels.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    args = ["run", "--stream", "split-digits", "--experiences", "2", "--no-progress"]
    assert cli.main([*args, "--model", "mymodels:make", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert float(text.split("average accuracy")[1].split()[0]) > 0.7
    with EpisodicStore.open(out / "memory", readonly=True) as st:
        assert st.spec.dim == FIXED_KEY_DIM  # no embedding of its own: fixed keys
    assert cli.main([*args, "--model", "mymodels:nothing", "--out", str(tmp_path / "x")]) == 2
    assert "cannot load model factory" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["der++", "lamaml"])
def test_your_own_module_in_python(tmp_path, method):
    """run(cfg, dir, model=module) trains any nn.Module (La-MAML included, through
    autograd); the folder records it, and a resume without it is refused clearly."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    cfg = RunConfig(
        stream="split-digits", experiences=2, method=method, progress=False, tensorboard=False
    )
    result = run(cfg, tmp_path / "r", model=net, echo=lambda m: None)
    assert result.matrix[-1].mean() > 0.6, result.matrix
    assert RunConfig.load(tmp_path / "r" / "config.toml").model == "custom:Sequential"
    with pytest.raises(ConfigError, match=r"resume it with run\(cfg, run_dir, model=...\)"):
        run(RunConfig.load(tmp_path / "r" / "config.toml"), tmp_path / "r", echo=lambda m: None)
    again = run(cfg, tmp_path / "r", model=net, echo=lambda m: None)  # finished: same numbers
    assert np.array_equal(again.matrix, result.matrix, equal_nan=True)
