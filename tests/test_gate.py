"""The learned prediction controller: its closed-form step, what it learns, and that it
never lets evaluation change what the agent learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import streams
from lifelong.config import RunConfig
from lifelong.learner import agent_average, gate, prediction
from lifelong.learner.gate import PredictionGate, mixed_logits, prototypes
from tests.test_agent import BATCH, make_agent, train


def test_closed_form_step_equals_autograd():
    g = torch.Generator().manual_seed(0)
    f, head = torch.randn(12, 8, generator=g), torch.randn(12, 5, generator=g)
    y = torch.randint(0, 5, (12,), generator=g)
    gate_ = PredictionGate(5)
    gate_.learn(torch.randn(30, 8, generator=g), torch.randn(30, 5), torch.arange(30) % 5)
    gate_.weights = torch.tensor([0.7, 0.4])
    w = gate_.weights.clone().requires_grad_()
    loss = F.cross_entropy(mixed_logits(w, f, head, gate_.protos), y)
    (grad,) = torch.autograd.grad(loss, w)
    gate_.learn(f, head, y)
    assert torch.allclose(gate_.weights, (w - gate.LR * grad).detach(), atol=1e-6)


def _stream_of(x_informative: bool, steps: int = 100):
    """Embeddings whose class means tell the classes apart, and head logits that do or do
    not: which expert the controller should come to trust."""
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 16, generator=g) * 3
    for _ in range(steps):
        y = torch.randint(0, 4, (BATCH,), generator=g)
        f = centres[y] + torch.randn(BATCH, 16, generator=g)
        head = F.one_hot(y, 4).float() * 5 if x_informative else torch.randn(BATCH, 4, generator=g)
        yield f, head, y


@pytest.mark.parametrize("head_knows", [False, True])
def test_it_learns_which_expert_predicts_unseen_batches(head_knows):
    gate_ = PredictionGate(4)
    for f, head, y in _stream_of(head_knows):
        gate_.learn(f, head, y)
    w_head, w_proto = gate_.weights.tolist()
    assert min(w_head, w_proto) >= 0  # kept non-negative
    if head_knows:
        assert w_head > 1.0 and w_head > 3 * w_proto
    else:
        assert w_proto > 1.0 > w_head  # random head logits: from (1, 0) to the prototypes


def test_prototypes_are_normalised_class_means():
    f = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    p = prototypes(f, torch.tensor([0, 0, 2]), 3)
    assert torch.allclose(p[0], F.normalize(torch.tensor([1 + 2**-0.5, 2**-0.5]), dim=0))
    assert torch.equal(p[1], torch.zeros(2))  # no memory of class 1: no prototype
    assert torch.allclose(p[2], torch.tensor([0.0, 1.0]))


def test_on_by_default_and_predicting_never_changes_what_is_learned():
    s = streams.get_stream("split-digits", experiences=2, seed=0)
    watched, quiet = make_agent(s, memory=100), make_agent(s, memory=100)
    assert watched.gate is not None
    e = s[0]
    for b in range(0, 300, BATCH):
        x, y = e.x_train[b : b + BATCH], e.y_train[b : b + BATCH]
        watched.predict(e.x_test)  # evaluating computes prototypes it does not keep
        watched.observe(x, y)
        quiet.observe(x, y)
    assert torch.equal(watched.gate.weights, quiet.gate.weights)
    for a, b in zip(watched.model.parameters(), quiet.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(watched.predict(e.x_test), quiet.predict(e.x_test))


def test_checkpoint_carries_the_controller():
    s = streams.get_stream("split-digits", experiences=2, seed=0)
    agent = make_agent(s, memory=100)
    train(agent, s, [s[0]])
    clone = make_agent(s, memory=100)
    clone.store = agent.store
    clone.load_state_dict(agent.state_dict())
    assert torch.equal(clone.gate.weights, agent.gate.weights)
    assert torch.equal(clone.gate.protos, agent.gate.protos)
    assert torch.equal(clone.predict(s[0].x_test), agent.predict(s[0].x_test))


def test_the_controller_predicts_and_off_means_the_head_alone():
    s = streams.get_stream("split-digits", experiences=3, seed=0)
    on, off = make_agent(s, memory=100), make_agent(s, memory=100, gate=False)
    assert off.gate is None
    rows_on, rows_off = train(on, s, list(s)), train(off, s, list(s))
    assert sum(rows_on[-1]) / 3 > 0.6 and sum(rows_off[-1]) / 3 > 0.6
    assert on.gate.weights[1] > 0  # class-incremental: it came to use the prototypes
    x = s[0].x_test
    with torch.no_grad():
        head_only = off.model(x).argmax(1)
    assert torch.equal(off.predict(x), head_only)


def test_a_served_snapshot_predicts_as_the_agent_does(tmp_path):
    from lifelong.serve.published import Snapshot, published_state

    s = streams.get_stream("split-digits", experiences=2, seed=0)
    agent = make_agent(s, memory=100)
    train(agent, s, list(s))
    assert agent.gate.weights[1] > 0  # the mixture differs from the head alone
    torch.save(published_state(agent, 1), tmp_path / "weights.pt")
    cfg = RunConfig(stream=s.name, n_classes=s.n_classes)
    snapshot = Snapshot.load(tmp_path / "weights.pt", cfg, published_at=0.0)
    x = torch.cat([e.x_test for e in s])
    labels, _ = snapshot.predict(x)
    assert torch.equal(torch.from_numpy(labels), agent.predict(x))


def test_the_weight_average_predicts_once_classes_stop_arriving():
    """Domain-incremental: every class early, so the running average of the weights
    predicts; predicting leaves the learning weights as they were, and a checkpoint carries
    the average. Class-incremental, right after a class arrived: the live weights predict."""
    s = streams.get_stream("permuted-digits", experiences=2, seed=0)
    agent = make_agent(s, memory=100, average_weights=0.9)  # horizon 10 steps
    train(agent, s, list(s))
    assert agent.averaging
    live = [w.clone() for w in agent.model.parameters()]
    x = s[1].x_test
    averaged = agent.predict(x)
    assert all(torch.equal(a, b) for a, b in zip(live, agent.model.parameters(), strict=True))
    off = make_agent(s, memory=100, average_weights=0.9)
    off.store = agent.store
    off.load_state_dict(agent.state_dict())
    assert torch.equal(off.predict(x), averaged)  # same average, restored
    # a run without the average predicts with the live weights: other labels somewhere
    plain = make_agent(s, memory=100, average_weights=0.0)
    plain.store = agent.store
    state = {k: v for k, v in agent.state_dict().items() if k != "average"}
    plain.load_state_dict(state)
    assert plain.average is None and not plain.averaging
    assert (plain.predict(x) != averaged).any()

    c = streams.get_stream("split-digits", experiences=3, seed=0)
    agent = make_agent(c, memory=100, average_weights=0.9)
    e = c[2]
    for b in range(0, 10 * BATCH, BATCH):  # the last experience's classes, 10 steps ago
        agent.observe(e.x_train[b : b + BATCH], e.y_train[b : b + BATCH])
    assert not agent.averaging  # 10 steps since a new class, three horizons are 30


def test_an_arriving_batch_is_answered_by_the_weights_lately_right_on_arrivals():
    """A test set is answered by the weight average wherever it predicts; a batch as it
    arrives, by the average only while its watch finds it no worse than the live weights on
    incoming batches, else by the live weights, with the prototypes of the weights that
    answer (neither answer changes the other's)."""
    s = streams.get_stream("permuted-digits", experiences=2, seed=0)
    agent = make_agent(s, memory=100, average_weights=0.9)
    train(agent, s, list(s))
    agent.observe(s[1].x_train[:BATCH], s[1].y_train[:BATCH])  # a step no answer has seen
    assert agent.averaging
    x, watch = s[1].x_test, agent.average
    clone = make_agent(s, memory=100, average_weights=0.9)
    clone.store = agent.store
    clone.load_state_dict(agent.state_dict())
    watch.own_loss.fill_(2.0), watch.live_loss.fill_(1.0)  # the average lately behind
    first = agent.predict(x, arriving=True)
    averaged = agent.predict(x)  # a test set at the same step: the average still
    assert torch.equal(averaged, clone.predict(x))  # as if nothing had been answered before
    with agent_average.predicting_weights(agent), agent_average.predicting_weights(clone):
        mine, fresh = prediction.prototypes_now(agent), prediction.prototypes_now(clone)
    assert torch.equal(mine, fresh)  # the average's prototypes, not the live ones' kept
    assert torch.equal(first, prediction.predict(agent, x, None, False))  # the live weights
    assert (first != averaged).any()
    watch.own_loss.fill_(1.0), watch.live_loss.fill_(2.0)  # the average lately better
    assert torch.equal(agent.predict(x, arriving=True), averaged)


def test_the_weight_average_is_the_mean_of_the_weights_until_its_horizon(monkeypatch):
    """It takes the weights every EVERY-th step. Before its horizon it is the plain mean of
    the weights it took (the initial weights are not in it); after, each take moves it by
    1 - decay ** EVERY. (Restarts, which early learning triggers, are held off here.)"""
    from lifelong.learner import weight_average
    from lifelong.learner.weight_average import EVERY

    monkeypatch.setattr(weight_average, "LAG_NATS", float("inf"))
    s = streams.get_stream("split-digits", experiences=1, seed=0)
    agent = make_agent(s, memory=50, average_weights=0.95)  # plain mean for 5 takes
    e, taken = s[0], []
    for step in range(1, 6 * EVERY + 1):
        b = (step - 1) * BATCH
        agent.observe(e.x_train[b : b + BATCH], e.y_train[b : b + BATCH])
        if step % EVERY == 0:
            taken.append([w.detach().clone() for w in agent.model.parameters()])
        if len(taken) == 5 and step == 5 * EVERY:
            means = [torch.stack(ws).mean(0) for ws in zip(*taken, strict=True)]
            averaged = agent.average.weights
            assert all(torch.allclose(a, m, atol=1e-6) for a, m in zip(averaged, means))
    rate = 1 - 0.95**EVERY
    expected = [torch.lerp(m, w, rate) for m, w in zip(means, taken[5], strict=True)]
    assert all(torch.allclose(a, m, atol=1e-6) for a, m in zip(agent.average.weights, expected))


def test_the_weight_average_starts_again_when_it_falls_behind(monkeypatch):
    """A new permutation every 144 batches, a horizon of 200: the average, still answering
    for the old permutations, scores worse than the live weights on the incoming batches and
    starts again from them, so it predicts the newest experience about as well as they do.
    Kept from restarting, it lags there."""
    from lifelong.learner import weight_average

    s = streams.get_stream("permuted-digits", experiences=5, seed=0)
    agent = make_agent(s, memory=200)
    train(agent, s, list(s))
    assert agent.averaging and agent.average.restarts >= 4  # at least once a permutation
    newest = s[-1]
    with_restarts = agent.accuracy(newest.x_test, newest.y_test)
    live = agent.model(newest.x_test).argmax(1).eq(newest.y_test).float().mean().item()
    assert with_restarts > live - 0.05

    monkeypatch.setattr(weight_average, "LAG_NATS", float("inf"))
    lagging = make_agent(s, memory=200)
    train(lagging, s, list(s))
    assert lagging.average.restarts == 0
    assert lagging.accuracy(newest.x_test, newest.y_test) < with_restarts - 0.1


def test_the_weight_average_round_trips_through_a_checkpoint_and_reads_old_ones():
    s = streams.get_stream("permuted-digits", experiences=2, seed=0)
    agent = make_agent(s, memory=100, average_weights=0.9)
    train(agent, s, list(s))
    state = agent.state_dict()
    back = make_agent(s, memory=100, average_weights=0.9)
    back.store = agent.store
    back.load_state_dict(state)
    a, b = agent.average, back.average
    assert (float(a.count), a.restarts) == (float(b.count), b.restarts) and a.count > 0
    assert float(a.live_loss) == pytest.approx(float(b.live_loss))
    assert float(a.own_loss) == pytest.approx(float(b.own_loss))
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights, strict=True))
    # a checkpoint written before restarts kept the weights alone, and counted steps
    from lifelong.learner.weight_average import EVERY

    old = make_agent(s, memory=100, average_weights=0.9)
    old.store = agent.store
    old.load_state_dict({**state, "average": [w.clone() for w in a.weights]})
    assert float(old.average.count) == agent.steps // EVERY and old.average.restarts == 0
    assert torch.isnan(old.average.live_loss)
