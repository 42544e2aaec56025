"""The closed-form gradients of the hot paths equal autograd's, on real digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import streams
from lifelong.learner.backbone import Backbone
from lifelong.learner.losses import ReplayLoss
from lifelong.learner.models import build_model


@pytest.fixture(scope="module")
def digits():
    s = streams.get_stream("split-digits", experiences=2, seed=0)
    return (
        s,
        torch.cat([s[0].x_train[:12], s[1].x_train[:8]]),
        torch.cat([s[0].y_train[:12], s[1].y_train[:8]]),
    )


def _autograd(loss: ReplayLoss, logits, y, n_in):
    z = logits.clone().requires_grad_()
    value = loss(z[:n_in], y[:n_in], z[n_in:] if len(y) > n_in else None, y[n_in:])
    return value.detach(), torch.autograd.grad(value, z)[0]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"ace": True},
        {"distill": 0.7},
        {"ace": True, "distill": 1.0, "task_masks": True},
    ],
    ids=["plain", "ace", "distill", "ace-distill-task-masks"],
)
@pytest.mark.parametrize("n_in", [12, 20])  # with replayed rows, and incoming alone
def test_replay_loss_gradient_in_closed_form_equals_autograd(settings, n_in):
    gen = torch.Generator().manual_seed(1)
    n, classes = 20, 10
    logits = torch.randn(n, classes, generator=gen) * 3
    y = torch.randint(0, 5, (n,), generator=gen)
    y[n_in:] = torch.randint(5, 10, (n - n_in,), generator=gen)
    kw = {k: v for k, v in settings.items() if k != "task_masks"}
    if n > n_in and kw.get("distill"):
        kw["target_logits"] = torch.randn(n - n_in, classes, generator=gen)
    if settings.get("task_masks"):
        kw["mask_in"] = torch.arange(classes) < 5
        kw["mask_mem"] = (torch.arange(classes) >= 5).expand(n - n_in, classes)
    loss = ReplayLoss(**kw)
    value, grad = loss.with_grad(logits, y, n_in)
    want_value, want_grad = _autograd(loss, logits, y, n_in)
    assert torch.allclose(value, want_value, atol=1e-5)
    assert torch.allclose(grad, want_grad, atol=1e-6)
    if settings.get("ace"):  # classes absent from the incoming batch get no push from it
        assert (grad[:n_in, 5:] == 0).all()


def test_mlp_backward_written_out_equals_autograd(digits):
    stream, x, y = digits
    torch.manual_seed(0)
    model = build_model("mlp", stream.input_shape, stream.n_classes, 32)
    weights = [p.detach() + 0.01 for p in model.parameters()]
    loss = ReplayLoss(distill=0.5, target_logits=torch.randn(8, stream.n_classes))
    logits, vjp, features = model.forward_vjp(weights, x)
    _, grad_logits = loss.with_grad(logits, y, 12)
    closed = vjp(grad_logits)
    # the generic path: autograd through the same network
    logits_ag, vjp_ag, _ = Backbone.forward_vjp(model, weights, x)
    assert torch.allclose(logits, logits_ag, atol=1e-6)
    w1, b1, w2, b2 = weights[:4]  # the embedding on the way is the hidden layer's
    hidden = F.relu(F.linear(F.relu(F.linear(x.flatten(1), w1, b1)), w2, b2))
    assert torch.allclose(features, hidden, atol=1e-6)
    for mine, theirs in zip(closed, vjp_ag(grad_logits), strict=True):
        assert mine.shape == theirs.shape
        assert torch.allclose(mine, theirs, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in closed)
    assert not any(w.requires_grad for w in closed)
