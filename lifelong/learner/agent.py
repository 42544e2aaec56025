"""``Agent``: learns each incoming batch once, remembers it, and replays memories.

The page to read is ``observe``: draw replay, update, learn the prediction controller from
the update's own forward pass, write memories, take the weights into the average. Everything
the step touches lives on the learner's device and changes in place, and the step reads
nothing back to the host: on a GPU it is captured once as a CUDA graph and replayed
(``capture.py``). Memories live in a ``ReplayMemory`` that flushes to the episodic store
(SQLite + FAISS, on the host) at checkpoints; prediction is ``prediction.py`` and the
checkpoint state ``agent_state.py``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

from lifelong.learner import agent_average, agent_memory, agent_state, compute, prediction
from lifelong.learner.agent_memory import fixed_keys
from lifelong.learner.backbone import flatten_parameters
from lifelong.learner.capture import StaticStep
from lifelong.learner.checks import as_inputs, as_labels, check_batch
from lifelong.learner.config import LearnerConfig
from lifelong.learner.device import learner_device
from lifelong.learner.eval_forward import EvalForward
from lifelong.learner.gate import PredictionGate
from lifelong.learner.losses import count_correct
from lifelong.learner.methods import Step, Update, method_class
from lifelong.learner.models import build_model
from lifelong.learner.replay_memory import ReplayMemory
from lifelong.learner.stream_spec import StreamSpec
from lifelong.learner.task_masks import TaskMasks
from lifelong.learner.weight_average import WeightAverage
from stores import EpisodicStore

DRAWS_SEED = 1_000_003 * 20_202  # the replay draws' and writes' seed, offset from the model's


class Learned(NamedTuple):
    """What one batch's updates leave: the last update's loss and incoming logits (which the
    memories of the batch keep), the live weights' logits of the batch before any update,
    and the rows passed forward and back, and forward only (the compute meter's)."""

    loss: torch.Tensor
    logits: torch.Tensor
    live_logits: torch.Tensor
    trained_rows: int
    forward_rows: int


class Agent:
    """The online learner: one pass over each incoming batch, replay from an episodic
    memory, a learned prediction controller, a weight average, and optionally La-MAML's
    learned per-weight rates.

    Drive it from your own loop::

        spec = StreamSpec(input_shape=(1, 28, 28), n_classes=10, task_aware=False)
        store = Agent.memory_for(cfg, spec)          # in RAM; give a folder to keep it
        agent = Agent(cfg, spec, store)
        for x, y in batches:
            loss = agent.observe(x, y)               # learn, replay, remember
        agent.end_experience(0)                      # at a task boundary, if there is one
        agent.predict(x_test), agent.accuracy(x_test, y_test)

    ``cfg`` is a ``LearnerConfig`` (or a ``RunConfig``, whose ``learner()`` is taken; its
    ``device`` says where the learner runs); ``store`` is where memories are written behind
    at ``flush_memory`` (checkpoints, experience ends). ``state_dict`` / ``load_state_dict``
    save and restore everything but the store, which checkpoints snapshot beside it.
    """

    def __init__(
        self,
        cfg: LearnerConfig,
        spec: StreamSpec,
        store: EpisodicStore,
        model: torch.nn.Module | None = None,
    ) -> None:
        cfg = _learner(cfg)
        self.cfg, self.spec, self.store = cfg, spec, store
        self.device = learner_device(cfg.device, cfg.bf16)
        torch.manual_seed(cfg.seed)
        if model is None:
            model = build_model(cfg.model, spec.input_shape, spec.n_classes, cfg.hidden)
        self.model = model.to(self.device)
        flatten_parameters(self.model)  # one buffer: a step, clip or average is one operation
        self.model.bf16 = cfg.bf16  # autocast of the autograd forward (learner_device checked it)
        # memories are keyed by the network's embedding, or, for a model without one (any
        # nn.Module of yours) or when asked, by a fixed random projection of the input
        self.fixed_keys = fixed_keys(cfg, model)
        method = method_class(cfg.method)
        self.method = method(self.model, method.settings_from(cfg.method_values), spec.scenario)
        self.forward = EvalForward(self.model)  # forward passes outside the updates
        # every draw of a step (replay, writes) comes from one call on this generator, seeded
        # apart from the weights' initialisation (the same seed would draw the same numbers)
        self.generator = torch.Generator(self.device).manual_seed(DRAWS_SEED + cfg.seed)
        self.memory = ReplayMemory(
            cfg.memory, spec.input_shape, spec.n_classes, cfg.write_policy, self.device
        )
        if len(store):  # a store written before (by another agent, or a tool): adopt it
            self.memory.load(store, store.catalog.ids)
        self.masks = TaskMasks(spec.n_classes, self.device)
        # the learned prediction controller (gate.py): needs the network's embedding
        has_embedding = hasattr(model, "embed") and hasattr(model, "head")
        use_gate = cfg.gate and has_embedding
        self.gate = PredictionGate(spec.n_classes, self.device) if use_gate else None
        # a running average of the weights, which predicts once the classes stop arriving
        decay = cfg.average_weights
        self.average = WeightAverage(self.model, decay) if decay else None
        self.classes_seen = torch.zeros(spec.n_classes, dtype=torch.bool, device=self.device)
        self.last_new_class_step = torch.zeros((), dtype=torch.int64, device=self.device)
        self.steps = self.grad_steps = self.examples = 0
        self.prototype_cache: tuple | None = None  # prediction.prototypes_now's last answer
        # updates and memories replayed per batch: the config's, unless a compute plan
        # (lifelong.learner.budget) fits them to the time a stream leaves
        self.iters, self.replay_batch = cfg.iters, cfg.replay_batch
        self.online_hits = torch.zeros((), dtype=torch.int64, device=self.device)
        self.online_seen = 0  # incoming examples, each labelled right before learning it or not
        # compute spent: examples passed forward and back by updates, and forward only
        # (keys, memories' logits, the weight average's watch)
        self.trained_rows = self.forward_rows = 0
        self._forward_flops: int | None = None  # one example's forward pass, measured once
        self._steps: dict[tuple, StaticStep] = {}  # captured steps, by their shapes
        if self.fixed_keys:
            self.projection = agent_memory.projection(spec, cfg.seed, self.device)

    @staticmethod
    def key_dim(cfg: LearnerConfig, spec: StreamSpec, model: torch.nn.Module | None = None) -> int:
        """The size of the memories' keys: the backbone's embedding, or the fixed keys'."""
        return agent_memory.key_dim(_learner(cfg), spec, model)

    @staticmethod
    def memory_for(
        cfg: LearnerConfig, spec: StreamSpec, path=None, model: torch.nn.Module | None = None
    ) -> EpisodicStore:
        """The episodic store this agent needs: opened at ``path`` if one is there, created
        otherwise, or kept in RAM when ``path`` is None. Pass the ``model`` you will give
        the agent, if it is your own (it decides the key size)."""
        return agent_memory.store_for(_learner(cfg), spec, path, model)

    # -- the step -------------------------------------------------------------------------
    def observe(
        self,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        *,
        task_id: int | None = None,
        experience: int = 0,
        position: int | None = None,
        checked: bool = False,
    ) -> torch.Tensor:
        """Learn one incoming batch (single pass), then write it to memory. Returns the loss,
        a 0-d tensor on the learner's device (``float(loss)`` reads it: the step itself
        never waits for the device).

        ``task_id``: the batch's task (None on task-free streams); ``experience`` and
        ``position`` (its first example's place in the stream; default: the examples seen
        so far) are recorded with the memories. ``checked``: the caller has already passed
        this data through ``check_data`` (the runner checks each experience once)."""
        x, y = as_inputs(x), as_labels(y)
        if position is None:
            position = self.examples
        if not checked:
            self.check_data(x, y, experience, position)
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        # the online measure meets the batch under its task's mask as known before it
        mask = None
        if self._masked(task_id):
            mask = self.masks.row(task_id)
            mask = None if mask is None else mask.clone()
            self.masks.note(task_id, y)
        u = self._draw_uniforms(len(y))
        learned = self._learn_batch(x, y, task_id, mask, u)
        draws = self.iters * len(self.memory)
        self.memory.add(x, y, task_id, experience, position, learned.logits, u[draws:])
        agent_average.note_classes(self, y)
        self.steps += 1
        self.examples += len(y)
        self.online_seen += len(y)
        self.grad_steps += self.iters
        self.trained_rows += learned.trained_rows
        self.forward_rows += learned.forward_rows
        if self.average is not None and self.average.due(self.steps):
            self.forward_rows += len(y)
            agent_average.take(self, x, y, learned.live_logits)
        if self.cfg.rekey_every and self.steps % self.cfg.rekey_every == 0:
            self.rekey()
        return learned.loss

    def _draw_uniforms(self, n: int) -> torch.Tensor:
        """Every random number one step of n examples uses, in one draw: standard
        exponentials for each update's replay draw, then the write's uniforms."""
        draws = self.iters * len(self.memory)
        u = torch.rand(
            draws + self.memory.uniforms_per_write(n),
            dtype=torch.float64,
            generator=self.generator,
            device=self.device,
        )
        u[:draws].log_().neg_()  # -log(u): standard exponential
        return u

    def _learn_batch(self, x, y, task_id, mask, u) -> Learned:
        """``_learn``, through a captured CUDA graph where the step's shapes have settled (a
        full memory, a batch size seen before) and the method allows it; else eagerly."""
        if not self._capturable(task_id):
            return self._learn(x, y, task_id, mask, u)
        key = (len(y), len(u), self.memory.max_task, self.iters, self.replay_batch)
        step = self._steps.get(key)
        if step is None:
            step = self._steps[key] = StaticStep(
                lambda xs, ys, us: self._learn(xs, ys, None, None, us),
                functools.partial(agent_average.update, self),
                (x, y, u),
                self.device,
            )
        return step(x, y, u)

    def _capturable(self, task_id) -> bool:
        return (
            self.device.type == "cuda"
            and self.cfg.cuda_graph
            and self.method.capturable
            and len(self.memory) == self.memory.capacity
            and not self._masked(task_id)
        )

    def _learn(self, x, y, task_id, mask, u: torch.Tensor) -> Learned:
        """The tensor work of one batch: ``iters`` updates, each on the incoming batch and a
        fresh replay batch; the prediction controller learns from the first update's forward
        pass (or, for a method whose update does not hand it over, from a forward of its
        own before it); the online measure is that prediction. No host reads."""
        fold = self.gate is not None and self.method.forward_in_step
        sizes = self.memory.group_sizes(self.cfg.replay_policy)
        first = self._update_batch(x, y, task_id, u, 0, sizes)
        online = live = None
        forward_rows = trained_rows = 0
        if self.gate is not None and not fold:  # the controller learns before the network
            rows = first.x if first.x_mem is None else torch.cat([first.x, first.x_mem])
            online, live = self._gate_step(first, mask, *self.forward.embed_and_head(rows))
            forward_rows += len(first.y) + (0 if first.y_mem is None else len(first.y_mem))
        elif self.gate is None and not self.method.logits_before_update:
            online = live = self.forward.logits(x)
            forward_rows += len(y)
        if not self.model.training:  # train() walks every module: not on every batch
            self.model.train()
        for i in range(self.iters):
            batch = first if i == 0 else self._update_batch(x, y, task_id, u, i, sizes)
            step = Step(*self.method.update(batch))
            trained_rows += self.method.rows(batch)
            if i == 0 and fold:
                if step.features is None or step.all_logits is None:
                    raise TypeError(
                        f"{type(self.method).__name__} says forward_in_step, but its update "
                        "returned no features and logits of every row"
                    )
                online, live = self._gate_step(batch, mask, step.features, step.all_logits)
            elif i == 0 and online is None:
                online = live = step.logits
        self.online_hits.add_(count_correct(online, y, mask))
        return Learned(step.loss, step.logits, live, trained_rows, forward_rows)

    def _gate_step(self, b: Update, mask, features, head) -> tuple[torch.Tensor, torch.Tensor]:
        """The prediction controller's step on the incoming batch (unseen: the online
        prediction) and the update's replayed memories (the past, where a head biased
        towards the newest classes shows it), from their embeddings and the head's logits;
        returns the incoming rows' logits, the controller's and the head's."""
        y, masks, n_in = b.y, None, len(b.y)
        if b.y_mem is not None:
            y = torch.cat([b.y, b.y_mem])
        if self.spec.task_aware:  # each row under its own task's classes
            n_mem = 0 if b.y_mem is None else len(b.y_mem)
            masks = self.masks.of_rows(mask, n_in, b.mask_mem, n_mem)
        return self.gate.learn(features, head, y, masks)[:n_in], head[:n_in]

    def _update_batch(self, x, y, task_id, u: torch.Tensor, i: int, sizes) -> Update:
        """Update ``i``'s data: the incoming batch, a fresh replay batch (drawn with the
        step's random numbers for it; ``sizes``: the memory's ``group_sizes``), the task
        masks."""
        size = len(self.memory)
        masked = self._masked(task_id)
        mask_in = self.masks.row(task_id) if masked else None
        if size == 0:
            return Update(x, y, mask_in=mask_in)
        slots = self.memory.sample(self.replay_batch, u[i * size : (i + 1) * size], sizes)
        x_mem, y_mem, t_mem, z_mem = self.memory.replay(slots)
        mask_mem = self.masks.rows(t_mem) if self.spec.task_aware else None
        return Update(x, y, x_mem, y_mem, t_mem, z_mem, mask_in, mask_mem)

    @property
    def online_correct(self) -> int:
        """Incoming examples labelled right before learning them (reads the device)."""
        return int(self.online_hits)

    @property
    def online_accuracy(self) -> float | None:
        """Accuracy on incoming batches before learning them, over all seen so far."""
        return self.online_correct / self.online_seen if self.online_seen else None

    @property
    def flops_per_example(self) -> float:
        """Training FLOPs spent per incoming example so far (see ``lifelong.learner.compute``)."""
        if self._forward_flops is None:
            self._forward_flops = compute.forward_flops(self.model, self.spec.input_shape)
        return compute.flops_per_example(
            self.trained_rows, self.forward_rows, self._forward_flops, self.examples
        )

    @property
    def rates(self):
        """The learned per-weight rates of La-MAML (None for other methods)."""
        return getattr(self.method, "rates", None)

    # -- memory upkeep (agent_memory.py) --------------------------------------------------
    def keys(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Memory keys, on the host: the network's embedding, or a fixed random projection of
        the input."""
        return agent_memory.keys(self, as_inputs(x, self.spec.input_shape))

    def flush_memory(self) -> None:
        """Bring the store up to date with the working memory (the runner does it at every
        checkpoint; a store written this way can be queried and snapshotted)."""
        agent_memory.flush(self)

    def end_experience(self, experience: int, renew: bool = True) -> None:
        """Refresh the logits ``experience``'s memories keep and re-key every memory (task-free:
        the keys alone); with ``renew`` off (a clock left no time), neither: a flush."""
        agent_memory.end_experience(self, experience, renew)
        self.prototype_cache = None

    def rekey(self) -> None:
        """Recompute every memory's key with the current encoder (it drifts as it learns)."""
        agent_memory.rekey(self)

    # -- task masks (task-incremental streams only) ---------------------------------------
    def _masked(self, task_id) -> bool:
        return self.spec.task_aware and task_id is not None

    @property
    def task_classes(self) -> torch.Tensor:
        """(tasks, C): the classes seen with each task (task-incremental streams)."""
        return self.masks.classes

    # -- the weight average (agent_average.py) --------------------------------------------
    @property
    def averaging(self) -> bool:
        """Whether the weight average predicts (three horizons after the last new class)."""
        return agent_average.averaging(self)

    # -- prediction (prediction.py) -------------------------------------------------------
    def predict(
        self,
        x: torch.Tensor | np.ndarray,
        task_id: int | None = None,
        *,
        adapt: bool | None = None,
        arriving: bool = False,
    ) -> torch.Tensor:
        """Class predictions (on the host); with ``adapt`` (MbPA++), each example is
        predicted by weights briefly tuned on its nearest memories, then thrown away;
        ``arriving``: a batch of the stream as it comes, not a test set."""
        adapt = self.cfg.local_adapt if adapt is None else adapt
        x = as_inputs(x, self.spec.input_shape)
        with agent_average.predicting_weights(self, arriving):
            return prediction.predict(self, x, task_id, adapt)

    def prediction_state(self) -> dict:
        """What predicting needs beside the weights: the controller's mixing weights and
        the prototypes at the current weights (for a served snapshot)."""
        return prediction.prediction_state(self)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, task_id: int | None = None) -> float:
        y = as_labels(y)
        return int((self.predict(x, task_id) == y.cpu()).sum()) / max(len(y), 1)

    def check_data(self, x, y, experience: int, position: int) -> None:
        """Refuse (``BadBatchError``) examples the agent cannot learn from: wrong shape, NaN or
        inf values, labels outside the classes; the error names the example (``position`` +
        its index). Nothing is learned or written before a batch passes."""
        check_batch(x, y, self.spec.input_shape, self.spec.n_classes, experience, position)

    # -- checkpoint state (agent_state.py) ------------------------------------------------
    def state_dict(self) -> dict:
        """The agent's state, on the host; flushes the memory first, so it matches the
        store's contents."""
        self.flush_memory()
        return agent_state.state_of(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict`` (made on any device); checked whole first (keys, weight
        shapes, memories in the store), so a state that does not fit leaves the agent as
        it was."""
        agent_state.restore(self, state)
        self.prototype_cache = None


def _learner(cfg) -> LearnerConfig:
    """A learner config; a run config (anything with ``learner()``) gives its learner's."""
    return cfg.learner() if callable(getattr(cfg, "learner", None)) else cfg
