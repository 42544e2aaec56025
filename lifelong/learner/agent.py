"""``Agent``: learns each incoming batch once, remembers it, and replays memories.

The page to read is ``observe``: draw replay, update (learned controller or plain replay),
write memories. Memories live in a ``ReplayMemory`` (RAM) that flushes to the episodic store
at checkpoints; everything else is bookkeeping around it.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from lifelong.errors import BadBatchError
from lifelong.learner import compute, gate
from lifelong.learner.adaptation import adapted_logits
from lifelong.learner.config import LearnerConfig
from lifelong.learner.losses import mask_to
from lifelong.learner.methods import Update, method_class
from lifelong.learner.models import build_model, embedding_dim
from lifelong.learner.replay_memory import ReplayMemory
from lifelong.learner.weight_average import WeightAverage
from stores import EpisodicStore, MemoryNotFound

FIXED_KEY_DIM = 128


@dataclass
class StreamSpec:
    """What the agent must know of a stream before it sees any data: the shape of one
    example (``(1, 28, 28)``, ``(3, 32, 32)``, ``(64,)``...), the number of classes, whether
    task ids are given at train and test time, and the scenario (ER-ACE is off on
    domain-incremental streams, where new classes do not appear)."""

    input_shape: tuple[int, ...]
    n_classes: int
    task_aware: bool  # task ids given at train and test time (task-incremental)
    scenario: str = "class"  # class | task | domain | task-free


class Agent:
    """The online learner: one pass over each incoming batch, replay from an episodic
    memory, optionally a learned per-weight learning-rate controller (La-MAML).

    Drive it from your own loop::

        spec = StreamSpec(input_shape=(1, 28, 28), n_classes=10, task_aware=False)
        store = Agent.memory_for(cfg, spec)          # in RAM; give a folder to keep it
        agent = Agent(cfg, spec, store)
        for x, y in batches:
            loss = agent.observe(x, y)               # learn, replay, remember
        agent.end_experience(0)                      # at a task boundary, if there is one
        agent.predict(x_test), agent.accuracy(x_test, y_test)

    ``cfg`` is a ``LearnerConfig`` (or a ``RunConfig``, whose ``learner()`` is taken);
    ``store`` is where memories are
    written behind at ``flush_memory`` (checkpoints, experience ends). ``state_dict`` /
    ``load_state_dict`` save and restore everything but the store, which checkpoints
    snapshot beside it.
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
        torch.manual_seed(cfg.seed)
        if model is None:
            model = build_model(cfg.model, spec.input_shape, spec.n_classes, cfg.hidden)
        self.model = model
        # memories are keyed by the network's embedding, or, for a model without one (any
        # nn.Module of yours) or when asked, by a fixed random projection of the input
        self.fixed_keys = _fixed_keys(cfg, model)
        method = method_class(cfg.method)
        self.method = method(self.model, method.settings_from(cfg.method_values), spec.scenario)
        self._mode_matters = any(
            isinstance(m, (torch.nn.Dropout, torch.nn.modules.batchnorm._BatchNorm))
            for m in self.model.modules()
        )
        self.np_rng = np.random.default_rng(cfg.seed)
        self.memory = ReplayMemory(
            cfg.memory, spec.input_shape, spec.n_classes, cfg.write_policy, cfg.seed
        )
        if len(store):  # a store written before (by another agent, or a tool): adopt it
            self.memory.load(store, store.catalog.ids)
        self.task_classes = torch.zeros(0, spec.n_classes, dtype=torch.bool)
        self._tasks_changed()
        # the learned prediction controller (lifelong.learner.gate): needs the network's embedding
        has_embedding = hasattr(model, "embed") and hasattr(model, "head")
        self.gate = gate.PredictionGate(spec.n_classes) if cfg.gate and has_embedding else None
        # a running average of the weights, which predicts once the classes stop arriving
        decay = cfg.average_weights
        self.average = WeightAverage(model, decay) if decay else None
        self.classes_seen = torch.zeros(spec.n_classes, dtype=torch.bool)
        self.last_new_class_step = 0
        self.steps = 0
        self.grad_steps = 0
        self.examples = 0
        self.online_correct = self.online_seen = 0  # incoming examples right before learning
        # compute spent: examples passed forward and back by updates, and forward only
        # (keys, memories' logits, the online measure where no update's forward serves)
        self.trained_rows = self.forward_rows = 0
        self._forward_flops: int | None = None  # one example's forward pass, measured once
        if self.fixed_keys:
            gen = torch.Generator().manual_seed(10_000 + cfg.seed)
            dim = math.prod(spec.input_shape)
            self.projection = torch.randn(dim, FIXED_KEY_DIM, generator=gen) / math.sqrt(dim)

    @staticmethod
    def key_dim(cfg: LearnerConfig, spec: StreamSpec, model: torch.nn.Module | None = None) -> int:
        """The size of the memories' keys: the backbone's embedding, or the fixed keys'."""
        cfg = _learner(cfg)
        if model is not None:
            return FIXED_KEY_DIM if _fixed_keys(cfg, model) else int(model.embedding_dim)
        if cfg.key_source == "fixed":
            return FIXED_KEY_DIM
        return embedding_dim(cfg.model, spec.input_shape, cfg.hidden) or FIXED_KEY_DIM

    @classmethod
    def memory_for(
        cls, cfg: LearnerConfig, spec: StreamSpec, path=None, model: torch.nn.Module | None = None
    ) -> EpisodicStore:
        """The episodic store this agent needs: opened at ``path`` if one is there, created
        otherwise, or kept in RAM when ``path`` is None. Pass the ``model`` you will give
        the agent, if it is your own (it decides the key size)."""
        cfg = _learner(cfg)
        settings = dict(
            dim=cls.key_dim(cfg, spec, model),
            value_shape=spec.input_shape,
            capacity=cfg.memory,
            eviction_policy=cfg.write_policy,
            seed=cfg.seed,
            index=cfg.index,
        )
        if path is None:
            return EpisodicStore.create(None, **settings)
        return EpisodicStore.open_or_create(path, **settings)

    # -- the step -------------------------------------------------------------------------
    def observe(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        task_id: int | None = None,
        experience: int = 0,
        position: int | None = None,
        checked: bool = False,
    ) -> float:
        """Learn one incoming batch (single pass), then write it to memory. Returns the loss.

        ``task_id``: the batch's task (None on task-free streams); ``experience`` and
        ``position`` (its first example's place in the stream; default: the examples seen
        so far) are recorded with the memories. ``checked``: the caller has already passed
        this data through ``check_data`` (the runner checks each experience once)."""
        if position is None:
            position = self.examples
        if not checked:
            self.check_data(x, y, experience, position)
        # the online measure: the batch as the weights meet it, under the task's mask as
        # known before this batch; from the first update's own forward where that is it
        mask = self._task_row(task_id)
        reuse = self.method.logits_before_update and not self._mode_matters and self.gate is None
        live_in = None  # the live weights' logits of the batch before it is learned
        if self.gate is None and not reuse:
            live_in = self._logits(x)
            self.online_correct += _correct(live_in, y, mask)
        self.online_seen += len(y)
        self._note_task(task_id, y)
        first = self._update_batch(x, y, task_id)  # the first update's data, replay included
        if self.gate is not None:  # the controller learns before the network does
            mixed, live_in = self._gate_step(first, mask)
            self.online_correct += _correct(mixed, y, mask)
        if not self.model.training:  # train() walks every module: not on every batch
            self.model.train()
        logits_in = None  # the incoming batch's logits, which memories keep (DER)
        for i in range(self.cfg.iters):
            batch = first if i == 0 else self._update_batch(x, y, task_id)
            loss, logits_in = self.method.update(batch)
            self.grad_steps += 1
            self.trained_rows += self.method.rows(batch)
            if i == 0 and reuse:
                live_in = logits_in
                self.online_correct += _correct(logits_in, y, mask)
        self.memory.add(x, y, task_id, experience, position, logits_in)
        self._note_classes(y)
        if self.average is not None:  # it watches the batch for lag, then takes the weights
            if self.average.count:
                self.forward_rows += len(x)
            with self._eval_mode():
                behind = self.average.watch(self.model, x, y, live_in)
            self.average.step(self.model, restart=behind)
        self.steps += 1
        self.examples += len(y)
        if self.cfg.rekey_every and self.steps % self.cfg.rekey_every == 0:
            self.rekey()
        return float(loss)

    def _gate_step(self, b: Update, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The prediction controller's step on the incoming batch (unseen: the online
        prediction) and the first update's replayed memories (the past, where a head
        biased towards the newest classes shows it); returns the incoming batch's logits,
        the controller's and the head's."""
        x, y, masks = b.x, b.y, None
        if b.x_mem is not None:
            x, y = torch.cat([b.x, b.x_mem]), torch.cat([b.y, b.y_mem])
        if self.spec.task_aware:  # each row under its own task's classes
            every = torch.ones(self.spec.n_classes, dtype=torch.bool)
            rows = [(every if mask is None else mask).expand(len(b.y), -1)]
            if b.x_mem is not None:
                mem = b.mask_mem if b.mask_mem is not None else every.expand(len(b.y_mem), -1)
                rows.append(mem)
            masks = torch.cat(rows)
        features, head = self._features_and_logits(x)
        n_in = len(b.y)
        return self.gate.learn(features, head, y, masks)[:n_in], head[:n_in]

    @property
    def online_accuracy(self) -> float | None:
        """Accuracy on incoming batches before learning them (the online, real-time
        protocol's measure, and the one a task-free stream has), over all seen so far."""
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

    def _update_batch(self, x: torch.Tensor, y: torch.Tensor, task_id) -> Update:
        """One update's data: the incoming batch, a fresh replay batch, the task masks."""
        x_mem, y_mem, t_mem, z_mem = self._replay(x)
        mask_in = self._task_row(task_id)
        mask_mem = self._task_mask(t_mem) if self.spec.task_aware and t_mem is not None else None
        return Update(x, y, x_mem, y_mem, t_mem, z_mem, mask_in, mask_mem)

    # -- memory ---------------------------------------------------------------------------
    def _replay(self, x: torch.Tensor) -> tuple:
        """A replay batch (x, y, task, logits when written), or four Nones while memory is
        empty."""
        if len(self.memory) == 0:
            return None, None, None, None
        slots = self.memory.sample(self.cfg.replay_batch, self.cfg.replay_policy, self.np_rng)
        return self.memory.replay(slots)

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> np.ndarray:
        """Memory keys: the network's embedding, or a fixed random projection of the input."""
        if self.fixed_keys:
            return (x.reshape(len(x), -1) @ self.projection).numpy()
        self.forward_rows += len(x)
        with self._eval_mode():
            return self.model.embed(x).numpy()

    @torch.no_grad()
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of memories (targets, losses), in eval mode like their keys."""
        self.forward_rows += len(x)
        with self._eval_mode():
            return self.model(x)

    @torch.no_grad()
    def _embeddings_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and logits from one forward pass in eval mode (fixed keys aside)."""
        if self.fixed_keys:
            return torch.from_numpy(self.keys(x)), self._logits(x)
        return self._features_and_logits(x)

    @torch.no_grad()
    def _features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's embedding and logits, from one forward pass in eval mode."""
        self.forward_rows += len(x)
        with self._eval_mode():
            embeddings = self.model.embed(x)
            return embeddings, self.model.head(embeddings)

    @contextlib.contextmanager
    def _eval_mode(self):
        """Eval mode where batch norm or dropout make the mode matter, so memories' keys and
        logits neither use nor move the batch statistics; otherwise no mode round trip
        (``train()`` walks every module)."""
        if not self._mode_matters:
            yield
            return
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def _memory_losses(self, slots: np.ndarray) -> np.ndarray:
        x, y, _, _ = self.memory.batch(slots)
        return torch.nn.functional.cross_entropy(self._logits(x), y, reduction="none").numpy()

    def flush_memory(self) -> None:
        """Bring the store up to date with the RAM memory (the runner does it at every
        checkpoint; a store written this way can be queried and snapshotted)."""
        self.memory.flush_to_store(self.store, self.keys, self._memory_losses)

    def end_experience(self, experience: int) -> None:
        """What the agent does once an experience is over: refresh the logits it remembers
        of that experience (with distillation) and re-key its memories. One forward pass
        over the memories serves the new logits, the keys and the replay losses. On a
        task-free stream the boundary is the evaluator's, not the learner's: the logits
        stay as written, and only the store's keys are renewed."""
        embeddings, logits = self._embeddings_and_logits(self.memory.x[: len(self.memory)])
        task_free = self.spec.scenario == "task-free"
        if (
            getattr(self.method.settings, "distill", 0)
            and self.cfg.refresh_logits
            and not task_free
        ):
            self.memory.refresh_logits(experience, logits)
        self._flush_rekeyed(embeddings, logits)

    def rekey(self) -> None:
        """Recompute every memory's key with the current encoder (it drifts as it learns)."""
        self._flush_rekeyed(*self._embeddings_and_logits(self.memory.x[: len(self.memory)]))

    def _flush_rekeyed(self, embeddings: torch.Tensor, logits: torch.Tensor) -> None:
        """Flush, with every memory's key renewed in the same transaction (fixed keys never
        drift); replay losses from the memories' current logits."""
        y = self.memory.y

        def losses(slots: np.ndarray) -> np.ndarray:
            s = torch.from_numpy(slots)
            return torch.nn.functional.cross_entropy(logits[s], y[s], reduction="none").numpy()

        keys = None if self.fixed_keys else embeddings.numpy()
        self.memory.flush_to_store(self.store, self.keys, losses, keys=keys)

    # -- task masks (task-incremental streams only) ---------------------------------------
    def _masked(self, task_id) -> bool:
        return self.spec.task_aware and task_id is not None

    def _note_task(self, task_id, y) -> None:
        if not self._masked(task_id):
            return
        new = {(task_id, c) for c in y.tolist()} - self._task_pairs  # most batches: none
        if not new:
            return
        if task_id >= len(self.task_classes):
            grow = torch.zeros(
                task_id + 1 - len(self.task_classes), self.spec.n_classes, dtype=torch.bool
            )
            self.task_classes = torch.cat([self.task_classes, grow])
        self.task_classes[task_id, y] = True
        self._tasks_changed()

    def _tasks_changed(self) -> None:
        """Rebuild the mask table: a row of allowed classes per known task, then one that
        allows every class (an unknown task's), so a batch's masks are one index; a new
        table each time, so rows handed out before stay as they were."""
        self._task_pairs = {(int(t), int(c)) for t, c in self.task_classes.nonzero().tolist()}
        every = torch.ones(1, self.spec.n_classes, dtype=torch.bool)
        self._mask_rows = torch.cat([self.task_classes, every])

    def _task_row(self, task_id) -> torch.Tensor | None:
        """(C,) the classes a known task allows; None (every class) for no or a new task."""
        if not self._masked(task_id) or task_id >= len(self.task_classes):
            return None
        return self._mask_rows[task_id]

    def _task_mask(self, tasks: torch.Tensor) -> torch.Tensor:
        """(n, C) the classes each of these tasks allows (every class for unknown ones)."""
        unknown = len(self.task_classes)
        return self._mask_rows[torch.where((tasks >= 0) & (tasks < unknown), tasks, unknown)]

    # -- the weight average ---------------------------------------------------------------
    def _note_classes(self, y: torch.Tensor) -> None:
        if not self.classes_seen[y].all():
            self.classes_seen[y] = True
            self.last_new_class_step = self.steps + 1

    @property
    def averaging(self) -> bool:
        """Whether the weight average predicts: once three of its horizons (1 / (1 - decay)
        steps) have passed since a class was new, so it has absorbed every class it is
        asked about. On a domain-incremental stream that is nearly always; on a
        class-incremental one, never right after a class arrives, where it would lag."""
        if self.average is None:
            return False
        return self.steps - self.last_new_class_step >= 3 * self.average.horizon

    @contextlib.contextmanager
    def predicting_weights(self):
        """The weights predictions use, in the model for the duration: the running
        average when it predicts, else the weights as they are."""
        if not self.averaging:
            yield
            return
        with self.average.swapped_in(self.model):
            yield

    # -- prediction -----------------------------------------------------------------------
    def predict(
        self, x: torch.Tensor, task_id: int | None = None, *, adapt: bool | None = None
    ) -> torch.Tensor:
        """Class predictions; with ``adapt`` (MbPA++), each example is predicted by weights
        briefly tuned on its nearest memories, which are then thrown away."""
        adapt = self.cfg.local_adapt if adapt is None else adapt
        with self.predicting_weights():
            return self._predict(x, task_id, adapt)

    def _predict(self, x: torch.Tensor, task_id: int | None, adapt: bool) -> torch.Tensor:
        self.model.eval()
        protos = self._prototypes_now() if self.gate is not None and not adapt else None
        out = []
        for xb in x.split(500):
            if adapt and len(self.memory):
                self.flush_memory()
                logits = adapted_logits(self.model, self.store, xb, self.keys(xb), self.cfg)
            elif protos is not None:
                with torch.no_grad():
                    f = self.model.embed(xb)
                    logits = gate.mixed_logits(self.gate.weights, f, self.model.head(f), protos)
            else:
                with torch.no_grad():
                    logits = self.model(xb)
            if self._masked(task_id):
                logits = mask_to(logits, self._task_row(task_id))
            out.append(logits.argmax(1))
        self.model.train()
        return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)

    @torch.no_grad()
    def _prototypes_now(self) -> torch.Tensor | None:
        """Prototypes at the current weights, for predicting (the model is in eval mode);
        not kept, so predicting never changes what the agent learns."""
        if not len(self.memory):
            return None
        n = len(self.memory)
        return gate.prototypes(
            self.model.embed(self.memory.x[:n]), self.memory.y[:n], self.spec.n_classes
        )

    def prediction_state(self) -> dict:
        """What predicting needs beside the weights: the controller's mixing weights and
        the prototypes at the current weights (for a served snapshot)."""
        if self.gate is None:
            return {}
        self.model.eval()
        protos = self._prototypes_now()
        self.model.train()
        return (
            {} if protos is None else {"weights": self.gate.weights.clone(), "prototypes": protos}
        )

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, task_id: int | None = None) -> float:
        return int((self.predict(x, task_id) == y).sum()) / max(len(y), 1)

    # -- input checks ---------------------------------------------------------------------
    def check_data(self, x, y, experience: int, position: int) -> None:
        """Refuse (``BadBatchError``) examples the agent cannot learn from: wrong shape, NaN or
        inf values, labels outside the classes; the error names the example (``position`` +
        its index). Nothing is learned or written before a batch passes."""
        where = f"experience {experience}"
        if tuple(x.shape[1:]) != tuple(self.spec.input_shape):
            raise BadBatchError(
                f"{where}: example {position} has shape {tuple(x.shape[1:])}, "
                f"expected {tuple(self.spec.input_shape)}"
            )
        if len(x) == 0:
            raise BadBatchError(f"{where}: empty batch at example {position}")
        if y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
            raise BadBatchError(
                f"{where}: batch at example {position} has {len(x)} inputs but labels of shape "
                f"{tuple(y.shape)} and dtype {y.dtype}; expected ({len(x)},) integers"
            )
        values, labels = x.detach().numpy(), y.numpy()
        if not np.isfinite(values).all():  # numpy: a tenth of torch's time on a small batch
            i = position + int(np.flatnonzero(~np.isfinite(values.reshape(len(x), -1)).all(1))[0])
            raise BadBatchError(f"{where}: example {i} has NaN or inf values")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.spec.n_classes):
            i = int(np.flatnonzero((labels < 0) | (labels >= self.spec.n_classes))[0])
            raise BadBatchError(
                f"{where}: example {position + i} has label {int(labels[i])}, "
                f"outside 0..{self.spec.n_classes - 1}"
            )

    # -- checkpoint state (plain tensors and JSON text: loadable with weights_only=True) ---
    def state_dict(self) -> dict:
        """The agent's state; flushes the memory first, so it matches the store's contents."""
        self.flush_memory()
        return {
            "memory": self.memory.state_dict(),
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(self.np_rng.bit_generator.state),
            "task_classes": self.task_classes.clone(),
            "counters": torch.tensor([self.steps, self.grad_steps, self.examples]),
            "online": torch.tensor([self.online_correct, self.online_seen]),
            "compute": torch.tensor([self.trained_rows, self.forward_rows]),
            **({"gate": self.gate.state_dict()} if self.gate is not None else {}),
            **({"average": self.average.state_dict()} if self.average is not None else {}),
            "classes_seen": self.classes_seen.clone(),
            "last_new_class_step": torch.tensor(self.last_new_class_step),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; checked whole first (keys, weight shapes, memories in
        the store), so a state that does not fit leaves the agent as it was."""
        self._check_state(state)
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state.get("method", state.get("rates", {})))
        torch.set_rng_state(state["torch_rng"])
        self.np_rng.bit_generator.state = json.loads(state["numpy_rng"])
        self.task_classes = state["task_classes"].clone()
        self._tasks_changed()
        self.steps, self.grad_steps, self.examples = (int(v) for v in state["counters"])
        # checkpoints from before the online measure: it counts from the resume on
        self.online_correct, self.online_seen = (int(v) for v in state.get("online", (0, 0)))
        self.trained_rows, self.forward_rows = (int(v) for v in state.get("compute", (0, 0)))
        if self.gate is not None and "gate" in state:
            self.gate.load_state_dict(state["gate"])
        if self.average is not None and "average" in state:
            self.average.load_state_dict(state["average"], self.steps)
        if "classes_seen" in state:
            self.classes_seen = state["classes_seen"].clone()
            self.last_new_class_step = int(state["last_new_class_step"])
        self.memory.load_state_dict(state["memory"], self.store)

    def _check_state(self, state: dict) -> None:
        needed = ["memory", "model", "torch_rng", "numpy_rng", "task_classes", "counters"]
        missing = [k for k in needed if k not in state]
        if self.method.state_dict() and not ({"method", "rates"} & set(state)):
            missing.append("method")
        if missing:
            raise ValueError(f"agent state lacks {missing}")
        own = self.model.state_dict()
        if set(state["model"]) != set(own) or any(
            tuple(state["model"][k].shape) != tuple(v.shape) for k, v in own.items()
        ):
            raise ValueError("agent state's model does not match this agent's model")
        ids = state["memory"]["store_ids"].numpy()
        if len(ids) > self.memory.capacity:
            raise ValueError(
                f"agent state holds {len(ids)} memories, capacity is {self.memory.capacity}"
            )
        absent = ids[self.store.catalog.rows_of(ids) < 0]
        if len(absent):
            raise MemoryNotFound(
                f"agent state's memories {absent[:10].tolist()} are not in the store"
            )


@torch.no_grad()
def _correct(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> int:
    """How many of a batch these logits label right (within the task's classes, if masked)."""
    if mask is not None:
        logits = mask_to(logits, mask.expand(len(y), -1))
    return int((logits.argmax(1) == y).sum())


def _learner(cfg) -> LearnerConfig:
    """A learner config; a run config (anything with ``learner()``) gives its learner's."""
    return cfg.learner() if callable(getattr(cfg, "learner", None)) else cfg


def _fixed_keys(cfg: LearnerConfig, model: torch.nn.Module) -> bool:
    return cfg.key_source == "fixed" or not (
        hasattr(model, "embed") and hasattr(model, "head") and hasattr(model, "embedding_dim")
    )
