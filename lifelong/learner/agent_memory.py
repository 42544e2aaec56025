"""The agent's memories kept in step with the store: the store an agent needs, the keys
that index its memories, and the flushes (at checkpoints, experience ends and re-keys) that
hand the store the working memory's changes, one copy from the device each."""

from __future__ import annotations

import math

import numpy as np
import torch

from lifelong.learner.config import LearnerConfig
from lifelong.learner.models import embedding_dim
from lifelong.learner.stream_spec import StreamSpec
from stores import EpisodicStore

FIXED_KEY_DIM = 128


def fixed_keys(cfg: LearnerConfig, model: torch.nn.Module) -> bool:
    """Whether memories are keyed by a fixed random projection of the input: when asked, or
    for a model without an embedding (any nn.Module of yours)."""
    return cfg.key_source == "fixed" or not (
        hasattr(model, "embed") and hasattr(model, "head") and hasattr(model, "embedding_dim")
    )


def projection(spec: StreamSpec, seed: int, device: torch.device) -> torch.Tensor:
    """The fixed keys' random projection of the input."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    dim = math.prod(spec.input_shape)
    return (torch.randn(dim, FIXED_KEY_DIM, generator=gen) / math.sqrt(dim)).to(device)


def key_dim(cfg: LearnerConfig, spec: StreamSpec, model: torch.nn.Module | None = None) -> int:
    """The size of the memories' keys: the backbone's embedding, or the fixed keys'."""
    if model is not None:
        return FIXED_KEY_DIM if fixed_keys(cfg, model) else int(model.embedding_dim)
    if cfg.key_source == "fixed":
        return FIXED_KEY_DIM
    return embedding_dim(cfg.model, spec.input_shape, cfg.hidden) or FIXED_KEY_DIM


def store_for(
    cfg: LearnerConfig, spec: StreamSpec, path=None, model: torch.nn.Module | None = None
) -> EpisodicStore:
    """The episodic store an agent needs: opened at ``path`` if one is there, created
    otherwise, or kept in RAM when ``path`` is None."""
    settings = dict(
        dim=key_dim(cfg, spec, model),
        value_shape=spec.input_shape,
        capacity=cfg.memory,
        eviction_policy=cfg.write_policy,
        seed=cfg.seed,
        index=cfg.index,
    )
    if path is None:
        return EpisodicStore.create(None, **settings)
    return EpisodicStore.open_or_create(path, **settings)


@torch.no_grad()
def keys(agent, x: torch.Tensor) -> np.ndarray:
    """Memory keys, on the host: the network's embedding, or the fixed projection. Not
    counted as training compute: the store's keys are made at flushes, whose timing (a
    checkpoint every N seconds) must not change a run's figures."""
    x = x.to(agent.device)
    if agent.fixed_keys:
        return (x.reshape(len(x), -1) @ agent.projection).cpu().numpy()
    with agent.forward.mode():
        return agent.model.embed(x).cpu().numpy()


def flush(agent) -> None:
    """Bring the store up to date with the working memory; the replayed memories' losses
    from their logits now (store upkeep, like the keys: not training compute)."""

    def losses(slots: np.ndarray) -> np.ndarray:
        rows = torch.from_numpy(slots).to(agent.device)
        return _losses(agent.forward.logits(agent.memory.x[rows]), agent.memory.y[rows])

    agent.memory.flush_to_store(agent.store, agent.keys, losses)


def end_experience(agent, experience: int, renew: bool = True) -> None:
    """Once an experience is over: refresh the logits its memories keep (with distillation)
    and re-key every memory, from one forward pass over the memories, which also serves the
    replay losses. On a task-free stream the boundary is the evaluator's, not the learner's:
    the logits stay as written, and only the store's keys are renewed. With ``renew`` off (a
    clock left no time for that pass) there is no pass: the memories keep their logits and
    keys, and the store takes the memories written since the last flush, as at any flush."""
    if not renew:
        flush(agent)
        return
    embeddings, logits = _memories_forward(agent)
    task_free = agent.spec.scenario == "task-free"
    distill = getattr(agent.method.settings, "distill", 0)
    if distill and agent.cfg.refresh_logits and not task_free:
        agent.memory.refresh_logits(experience, logits)
    _flush_rekeyed(agent, embeddings, logits)


def rekey(agent) -> None:
    """Recompute every memory's key with the current encoder (it drifts as it learns)."""
    _flush_rekeyed(agent, *_memories_forward(agent))


def _memories_forward(agent) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Keys (None for fixed keys) and logits of every memory, from one forward pass."""
    x = agent.memory.x[: len(agent.memory)]
    agent.forward_rows += len(x)
    if agent.fixed_keys:
        return None, agent.forward.logits(x)
    return agent.forward.embed_and_head(x)


def _flush_rekeyed(agent, embeddings: torch.Tensor | None, logits: torch.Tensor) -> None:
    """Flush, with every memory's key renewed in the same transaction (fixed keys never
    drift); replay losses from the memories' current logits."""
    y = agent.memory.y

    def losses(slots: np.ndarray) -> np.ndarray:
        rows = torch.from_numpy(slots).to(agent.device)
        return _losses(logits[rows], y[rows])

    new_keys = None if embeddings is None else embeddings.cpu().numpy()
    agent.memory.flush_to_store(agent.store, agent.keys, losses, keys=new_keys)


def _losses(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.cross_entropy(logits, y, reduction="none").cpu().numpy()
