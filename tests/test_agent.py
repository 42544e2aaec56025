"""The agent on real data: learning, the controller, local adaptation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import streams
from lifelong.config import ConfigError, RunConfig
from lifelong.errors import BadBatchError
from lifelong.learner.agent import Agent, StreamSpec

BATCH = 10  # incoming batch size: the run cuts the stream, not the learner


def make_agent(stream, **overrides) -> Agent:
    cfg = RunConfig(stream=stream.name, seed=0, **overrides).validate()
    spec = StreamSpec(stream.input_shape, stream.n_classes, stream.task_aware, stream.scenario)
    store = Agent.memory_for(cfg, spec)
    return Agent(cfg, spec, store)


def train(agent: Agent, stream, experiences) -> list[list[float]]:
    rows, pos = [], 0
    for e in experiences:
        order = torch.randperm(e.n_train, generator=torch.Generator().manual_seed(e.id))
        for b in range(0, e.n_train, BATCH):
            idx = order[b : b + BATCH]
            agent.observe(
                e.x_train[idx], e.y_train[idx], task_id=e.task_id, experience=e.id, position=pos
            )
            pos += len(idx)
        rows.append([agent.accuracy(t.x_test, t.y_test, t.task_id) for t in experiences])
    return rows


@pytest.fixture(scope="module")
def two_exp():
    return streams.get_stream("split-digits", experiences=2, seed=0)


@pytest.mark.parametrize("learned_rates", [False, True])
def test_learns_both_experiences_above_chance(two_exp, learned_rates):
    agent = make_agent(two_exp, learned_rates=learned_rates, memory=200)
    rows = train(agent, two_exp, list(two_exp))
    # chance is 0.1 over 10 classes (0.2 within an experience's 5); both must be learned and
    # the first must survive the second thanks to replay
    assert rows[0][0] > 0.8
    assert rows[-1][0] > 0.5 and rows[-1][1] > 0.5, rows
    assert len(agent.memory) == 200 and len(agent.store) == 0  # the store lags until a flush
    agent.flush_memory()
    assert len(agent.store) == 200


def test_controller_rates_change_and_stay_non_negative_where_applied(two_exp):
    agent = make_agent(two_exp, learned_rates=True, alpha_lr=0.5)
    before = [a.detach().clone() for a in agent.rates.rates]
    train(agent, two_exp, [two_exp[0]])
    after = [a.detach() for a in agent.rates.rates]
    assert any(not torch.allclose(a, b) for a, b in zip(before, after))
    spread = torch.cat([a.flatten() for a in after]).std()
    assert spread > 0  # rates became per-parameter, not one global rate
    assert all((a >= 0).all() for a in agent.rates.applied())


def test_applied_rates_follow_every_change_of_the_rates(two_exp):
    """The clipped rates are kept between calls, so they must notice any in-place write."""
    agent = make_agent(two_exp, learned_rates=True)
    rates = agent.rates
    first = rates.applied()
    assert rates.applied() is first  # unchanged rates: the same clipped tensors
    with torch.no_grad():
        rates.tensors[0].fill_(-1.0)  # a write in place
    assert (rates.applied()[0] == 0).all() and (rates.applied()[1] == 0.05).all()
    rates.load_state_dict(make_agent(two_exp, learned_rates=True).rates.state_dict())
    assert (rates.applied()[0] == 0.05).all()
    train(agent, two_exp, [two_exp[0]])  # meta-steps move the rates: applied() moves along
    assert all(torch.equal(a, r.clamp(min=0)) for a, r in zip(rates.applied(), rates.tensors))


def test_task_incremental_masks_head():
    s = streams.get_stream("split-task-digits", experiences=5)
    agent = make_agent(s, learned_rates=False)
    rows = train(agent, s, list(s)[:2])
    assert rows[-1][0] > 0.8 and rows[-1][1] > 0.8  # two classes per task: easy when masked
    pred = agent.predict(s[1].x_test, task_id=1)
    assert set(pred.unique().tolist()) <= set(s[1].classes)


@pytest.mark.parametrize("policy", ["uniform", "task-balanced"])
def test_replay_policies_run(two_exp, policy):
    agent = make_agent(two_exp, learned_rates=False, replay_policy=policy, memory=50, iters=1)
    e = two_exp[0]
    for b in range(0, 100, 10):
        agent.observe(e.x_train[b : b + 10], e.y_train[b : b + 10], task_id=0, position=b)
    agent.flush_memory()
    assert len(agent.store) == 50
    recs = agent.store.records(agent.store.catalog.ids)
    assert sum(r["replay_count"] for r in recs) > 0  # replay counters are kept


def test_rekey_tracks_the_encoder(two_exp):
    agent = make_agent(two_exp, learned_rates=False, memory=100, rekey_every=0)
    train(agent, two_exp, [two_exp[0]])
    agent.flush_memory()  # keys memories with the encoder as it is now
    with torch.no_grad():  # then the encoder drifts
        for p in agent.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ids = agent.store.catalog.ids
    values = torch.from_numpy(agent.store.fetch(ids).values)
    stale = np.abs(agent.store.keys_of(ids) - agent.keys(values)).max()
    agent.rekey()
    fresh = np.abs(agent.store.keys_of(ids) - agent.keys(values)).max()
    assert stale > 1e-3 and fresh < 1e-5


def test_local_adaptation_changes_predictions_only_temporarily(two_exp):
    agent = make_agent(
        two_exp, learned_rates=False, memory=200, adapt_steps=10, adapt_lr=0.2, adapt_l2=0.0
    )
    train(agent, two_exp, list(two_exp))
    x = torch.cat([two_exp[0].x_test, two_exp[1].x_test])
    weights = {k: v.clone() for k, v in agent.model.state_dict().items()}
    plain = agent.predict(x, adapt=False)
    adapted = agent.predict(x, adapt=True)
    assert (plain != adapted).any()
    for k, v in agent.model.state_dict().items():
        assert torch.equal(v, weights[k])
    assert torch.equal(agent.predict(x, adapt=False), plain)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda x, y: (
                x.masked_fill(torch.arange(len(x))[:, None, None, None] == 3, float("nan")),
                y,
            ),
            "experience 1: example 23 has NaN or inf",
        ),
        (lambda x, y: (x[:, :, :4], y), "experience 1: example 20 has shape"),
        (
            lambda x, y: (x, y.masked_fill(torch.arange(len(y)) == 2, 12)),
            "experience 1: example 22 has label 12",
        ),
        (lambda x, y: (x, y[:9]), r"experience 1: batch at example 20 has 10 inputs but labels"),
        (lambda x, y: (x, y.float()), r"dtype torch.float32; expected \(10,\) integers"),
        (lambda x, y: (x[:0], y[:0]), "experience 1: empty batch at example 20"),
    ],
)
def test_bad_batch_is_refused_and_nothing_is_written(two_exp, mutate, message):
    agent = make_agent(two_exp, learned_rates=False)
    e = two_exp[1]
    agent.observe(e.x_train[:10], e.y_train[:10], task_id=0, experience=1, position=10)
    before = len(agent.memory), [p.clone() for p in agent.model.parameters()]
    x, y = mutate(e.x_train[10:20], e.y_train[10:20])
    with pytest.raises(BadBatchError, match=message):
        agent.observe(x, y, task_id=0, experience=1, position=20)
    assert len(agent.memory) == before[0] and agent.memory.seen == 10
    assert all(torch.equal(a, b) for a, b in zip(before[1], agent.model.parameters()))


def test_colour_images_get_the_cnn_and_train():
    from lifelong.learner.models import SmallCNN

    rng = np.random.default_rng(0)
    # two separable colour classes: red-ish against blue-ish 32x32 images
    x = rng.random((40, 3, 32, 32)).astype(np.float32) * 0.5
    y = np.arange(40) % 2
    x[y == 0, 0] += 0.5
    x[y == 1, 2] += 0.5
    s = streams.from_arrays([(x[:30], y[:30])], [(x[30:], y[30:])], n_classes=2)
    agent = make_agent(s, learned_rates=False, memory=20, lr=0.1)
    assert isinstance(agent.model, SmallCNN)
    for _ in range(20):
        for b in range(0, 30, 10):
            agent.observe(s[0].x_train[b : b + 10], s[0].y_train[b : b + 10], task_id=0, position=b)
    assert agent.accuracy(s[0].x_test, s[0].y_test) == 1.0


def _meta_batch(stream):
    e = stream[0]
    return e.x_train[:10], e.y_train[:10], e.x_train[10:42], e.y_train[10:42]


def test_first_order_closed_form_equals_autograd_through_the_rates(two_exp):
    from lifelong.learner.learned_rates import (
        LearnedRates,
        meta_grads_autograd,
        meta_grads_first_order,
    )
    from lifelong.learner.losses import ReplayLoss
    from lifelong.learner.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", two_exp.input_shape, two_exp.n_classes, 32)
    rates = LearnedRates(model, 0.05)
    with torch.no_grad():  # rates of both signs, so the clip at zero is exercised
        for a in rates.rates:
            a.uniform_(-0.02, 0.1)

    args = (model, rates, ReplayLoss(ace=True), *_meta_batch(two_exp), 3, 0.5)  # clip 0.5: it bites
    meta_a, w_a, r_a, z_a = meta_grads_first_order(*args)
    meta_b, w_b, r_b, z_b = meta_grads_autograd(*args, create_graph=False)
    assert torch.allclose(meta_a, meta_b, atol=1e-6) and torch.allclose(z_a, z_b, atol=1e-5)
    for a, b in zip(w_a + r_a, w_b + r_b):
        assert torch.allclose(a, b, atol=1e-6)
    assert all((g[r <= 0] == 0).all() for g, r in zip(r_a, rates.rates))


def test_mlp_forward_with_equals_functional_call(two_exp):
    from torch.func import functional_call

    from lifelong.learner.models import build_model

    model = build_model("mlp", two_exp.input_shape, two_exp.n_classes, 32)
    weights = {n: p.detach() + 0.01 for n, p in model.named_parameters()}
    x = two_exp[0].x_test[:20]
    assert torch.allclose(model.forward_with(weights, x), functional_call(model, weights, (x,)))


def test_distillation_term_pulls_replayed_logits_to_their_targets():
    from lifelong.learner.losses import replay_loss

    logits_in, y_in = torch.randn(4, 5), torch.tensor([0, 1, 0, 1])
    logits_mem, y_mem = torch.randn(3, 5), torch.tensor([2, 3, 4])
    plain = replay_loss(logits_in, y_in, logits_mem, y_mem, ace=False)
    same = replay_loss(
        logits_in, y_in, logits_mem, y_mem, ace=False, target_logits=logits_mem, distill=2.0
    )
    moved = replay_loss(
        logits_in, y_in, logits_mem, y_mem, ace=False, target_logits=logits_mem + 1, distill=2.0
    )
    assert torch.isclose(same, plain) and torch.isclose(moved, plain + 2.0)


def test_end_of_experience_refreshes_its_memories_logits(two_exp):
    agent = make_agent(two_exp, learned_rates=False, memory=100, distill=1.0)
    train(agent, two_exp, [two_exp[0]])
    n = len(agent.memory)
    with torch.no_grad():
        now = agent.model(agent.memory.x[:n])
    assert not torch.allclose(agent.memory.logits[:n], now)  # written along the way
    agent.end_experience(0)
    assert torch.allclose(agent.memory.logits[:n], now)
    assert len(agent.store) == n  # and the store is up to date


def test_a_task_free_learner_takes_nothing_from_the_evaluators_boundaries():
    """Blurry streams have experiences only for evaluation: the end of one renews the
    store's keys but not the logits the learner replays."""
    blurry = streams.get_stream("blurry-digits", experiences=2, seed=0)
    agent = make_agent(blurry, memory=100, distill=1.0)
    train(agent, blurry, [blurry[0]])
    n = len(agent.memory)
    written = agent.memory.logits[:n].clone()
    agent.end_experience(0)
    assert torch.equal(agent.memory.logits[:n], written)
    assert len(agent.store) == n


def test_a_new_agent_adopts_the_memories_already_in_its_store(two_exp):
    first = make_agent(two_exp, learned_rates=False, memory=60)
    train(first, two_exp, [two_exp[0]])
    first.flush_memory()
    second = Agent(first.cfg, first.spec, first.store)
    assert len(second.memory) == 60
    by_id = torch.from_numpy(np.argsort(first.memory.store_ids()))  # adopted in id order
    assert torch.equal(second.memory.x[:60], first.memory.x[by_id])
    assert torch.equal(second.memory.y[:60], first.memory.y[by_id])


def test_retrieval_replay_is_no_longer_an_option():
    """Retrieval replay (nearest memories of the incoming batch) was removed: balanced by
    class it still trailed class-balanced replay on split-mnist5k (0.915 vs 0.919, seeds
    0-2) at a tenth of the speed; a config naming it is refused, naming the choices."""
    with pytest.raises(ConfigError, match="replay_policy must be one of"):
        RunConfig(replay_policy="retrieval").validate()


def test_load_state_dict_checks_everything_before_changing_anything(two_exp):
    """A state whose memories are not in this agent's store is refused whole: the agent
    keeps its weights, counters and memory (it used to half-load)."""
    from stores import MemoryNotFound

    trained = make_agent(two_exp, learned_rates=False, memory=50, iters=1)
    train(trained, two_exp, [two_exp[0]])
    state = trained.state_dict()
    fresh = make_agent(two_exp, learned_rates=False, memory=50, iters=1)  # its own empty store
    before = {k: v.clone() for k, v in fresh.model.state_dict().items()}
    with pytest.raises(MemoryNotFound, match="not in the store"):
        fresh.load_state_dict(state)
    after = fresh.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert fresh.steps == 0 and len(fresh.memory) == 0
    broken = {**state, "model": {k: v[:1] for k, v in state["model"].items()}}
    with pytest.raises(ValueError, match="does not match"):
        trained.load_state_dict(broken)


def test_observe_keyword_defaults_record_positions(two_exp):
    """observe(x, y) alone works: positions default to the examples seen so far."""
    agent = make_agent(two_exp, learned_rates=False, memory=50, iters=1)
    e = two_exp[0]
    for b in range(0, 40, 10):
        agent.observe(e.x_train[b : b + 10], e.y_train[b : b + 10])
    agent.flush_memory()
    positions = agent.store.fetch(agent.store.catalog.ids).positions
    assert sorted(positions.tolist()) == list(range(40))


def test_online_accuracy_counts_each_batch_before_it_is_learned(two_exp):
    # the head alone: the prediction controller's online prototypes are refreshed every
    # few steps, while predict() computes them afresh (tests/test_gate.py)
    agent = make_agent(two_exp, memory=100, gate=False)
    e = two_exp[0]
    expected_correct, seen = 0, 0
    for b in range(0, 200, BATCH):
        x, y = e.x_train[b : b + BATCH], e.y_train[b : b + BATCH]
        before = int((agent.predict(x) == y).sum())  # the weights this batch meets
        agent.observe(x, y)
        expected_correct, seen = expected_correct + before, seen + len(y)
        assert (agent.online_correct, agent.online_seen) == (expected_correct, seen)
    assert 0.3 < agent.online_accuracy < 1.0  # learns as it goes, yet met each batch unseen
    # checkpoints carry the counts, so a resumed run's measure continues exactly
    clone = make_agent(two_exp, memory=100, gate=False)
    clone.store = agent.store
    state = agent.state_dict()
    clone.load_state_dict(state)
    assert (clone.online_correct, clone.online_seen) == (expected_correct, seen)
    old = {k: v for k, v in state.items() if k != "online"}  # a checkpoint from before
    clone.load_state_dict(old)
    assert (clone.online_correct, clone.online_seen) == (0, 0)


def test_numpy_arrays_and_lists_are_taken_as_tensors_are(two_exp):
    """What users have: numpy (float64 examples, int32 or whole-float labels) learns and
    predicts exactly as the same data in tensors; what cannot be a batch is one clear error."""
    e = two_exp[0]
    a, b = make_agent(two_exp, memory=50), make_agent(two_exp, memory=50)
    for k in range(0, 60, BATCH):
        x, y = e.x_train[k : k + BATCH], e.y_train[k : k + BATCH]
        la = a.observe(x, y, task_id=e.task_id)
        lb = b.observe(x.double().numpy(), y.numpy().astype(np.int32), task_id=e.task_id)
        assert float(la) == float(lb)
    b.observe(e.x_train[60:70].tolist(), e.y_train[60:70].float().numpy(), task_id=e.task_id)
    a.observe(e.x_train[60:70], e.y_train[60:70], task_id=e.task_id)
    assert torch.equal(a.predict(e.x_test), b.predict(e.x_test.numpy()))
    assert a.accuracy(e.x_test, e.y_test) == b.accuracy(e.x_test.numpy(), e.y_test.numpy())
    with pytest.raises(BadBatchError, match="not a rectangular array"):
        b.observe([[0.0] * 64, [0.0]], [1, 2])
    with pytest.raises(BadBatchError, match="label at index 1 is 2.5"):
        b.observe(e.x_train[:2].numpy(), np.array([1.0, 2.5]))
    with pytest.raises(BadBatchError, match=r"examples have shape \(63,\), expected \(1, 8, 8\)"):
        b.predict(np.zeros((3, 63)))
