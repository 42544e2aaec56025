"""On a GPU: the captured step (a CUDA graph replayed) learns exactly what the step launched
op by op learns (the MLP's closed form); a batch-norm ResNet, through autograd, learns op by
op; bf16 autocast trains. Needs CUDA: ``make test-gpu`` runs this folder, ``make test`` does
not."""

from __future__ import annotations

import pytest
import torch

import streams
from tests.test_agent import BATCH, make_agent

pytestmark = pytest.mark.gpu
CUDA = "cuda"


def _twins(stream, **settings):
    return [make_agent(stream, device=CUDA, cuda_graph=g, **settings) for g in (True, False)]


def _captured(agent) -> bool:
    failed = [st.step.failed for st in agent._steps.values() if st.step.failed]
    assert not failed, failed
    return any(st.step.captured for st in agent._steps.values())


def _feed(agents, x, y, steps: int, task_id=None) -> list[list[torch.Tensor]]:
    losses = [[] for _ in agents]
    for b in range(steps):
        xb, yb = x[b * BATCH : (b + 1) * BATCH], y[b * BATCH : (b + 1) * BATCH]
        for agent, out in zip(agents, losses, strict=True):
            out.append(agent.observe(xb, yb, task_id=task_id, checked=True).clone())
    return losses


@pytest.mark.parametrize(
    "settings",
    [{}, {"iters": 1, "replay_batch": 10, "lr": 0.3, "grad_clip": 1.0}, {"method": "er-ace"}],
)
def test_the_captured_step_learns_what_the_eager_step_learns(settings):
    s = streams.get_stream("split-mnist5k", seed=0)
    captured, eager = _twins(s, memory=60, **settings)
    e = s[0]
    x, y = e.x_train[: 60 * BATCH].to(CUDA), e.y_train[: 60 * BATCH].to(CUDA)
    losses = _feed([captured, eager], x, y, 60)
    assert _captured(captured)
    assert not eager._steps
    assert torch.allclose(torch.stack(losses[0]), torch.stack(losses[1]), atol=1e-5)
    for a, b in zip(captured.model.parameters(), eager.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    n = len(captured.memory)  # (the spare row past them takes dropped writes in any order)
    assert torch.equal(captured.memory.x[:n], eager.memory.x[:n])
    assert captured.online_correct == eager.online_correct
    assert torch.allclose(captured.gate.weights, eager.gate.weights, atol=1e-6)
    assert torch.allclose(captured.average.flat, eager.average.flat, atol=1e-5)


def test_a_batch_norm_resnet_learns_op_by_op():
    """The ResNet trains through autograd, whose step is not captured (its capture failed
    on torch 2.11 on an H200: docs/benchmarks.md); op by op it learns, as on the CPU."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.randint(0, 4, (400,), generator=g)
    x = centres[y] + 0.5 * torch.randn(400, 3, 32, 32, generator=g)
    stream = streams.from_arrays(
        [(x.numpy(), y.numpy())], [(x[:100].numpy(), y[:100].numpy())], n_classes=4
    )
    agent = make_agent(stream, device=CUDA, model="reduced-resnet18", memory=50, iters=1)
    _feed([agent], x.to(CUDA), y.to(CUDA), 40)
    assert not agent.method.capturable and not agent._steps
    assert agent.accuracy(x[:100], y[:100]) > 0.5


def test_bf16_autocast_trains_the_resnet():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (200,), generator=g)
    x = torch.randn(200, 3, 32, 32, generator=g) + y.view(-1, 1, 1, 1) * 2.0
    stream = streams.from_arrays([(x.numpy(), y.numpy())], [(x.numpy(), y.numpy())], n_classes=2)
    agent = make_agent(stream, device=CUDA, model="reduced-resnet18", memory=40, bf16=True)
    assert agent.model.bf16
    _feed([agent], x.to(CUDA), y.to(CUDA), 20)
    assert all(torch.isfinite(p).all() for p in agent.model.parameters())
    assert agent.accuracy(x, y) > 0.7
