"""The agent's checkpoint state: plain tensors on the host (loadable with
``weights_only=True``, and on any device: a state made on a GPU resumes on the CPU and the
other way round), checked whole before anything is restored."""

from __future__ import annotations

import torch

from stores import MemoryNotFound


def state_of(agent) -> dict:
    """Everything but the store (which checkpoints snapshot beside it); the memory must have
    been flushed."""
    return {
        "memory": agent.memory.state_dict(),
        "model": {k: v.cpu() for k, v in agent.model.state_dict().items()},
        "method": {k: v.cpu() for k, v in agent.method.state_dict().items()},
        "torch_rng": torch.get_rng_state(),
        "generator": agent.generator.get_state(),
        "generator_device": agent.device.type,
        "task_classes": agent.masks.state_dict(),
        "counters": torch.tensor([agent.steps, agent.grad_steps, agent.examples]),
        "online": torch.tensor([agent.online_correct, agent.online_seen]),
        "compute": torch.tensor([agent.trained_rows, agent.forward_rows]),
        **({"gate": agent.gate.state_dict()} if agent.gate is not None else {}),
        **({"average": agent.average.state_dict()} if agent.average is not None else {}),
        "classes_seen": agent.classes_seen.cpu(),
        "last_new_class_step": agent.last_new_class_step.cpu(),
    }


def restore(agent, state: dict) -> None:
    """Restore ``state_of``'s state, checked first so a state that does not fit leaves the
    agent as it was. States from before the learner ran on a device drew with numpy: they
    resume with the draws seeded afresh from the seed and the step."""
    check(agent, state)
    device = agent.device
    agent.model.load_state_dict(state["model"])
    agent.method.load_state_dict(state.get("method", state.get("rates", {})))
    torch.set_rng_state(state["torch_rng"])
    agent.masks.load_state_dict(state["task_classes"])
    agent.steps, agent.grad_steps, agent.examples = (int(v) for v in state["counters"])
    # the draws continue where they were; a state from another kind of device (whose
    # generator keeps another state) or from before continues from a seed of its own
    if state.get("generator_device") == device.type:
        agent.generator.set_state(state["generator"])
    else:
        agent.generator.manual_seed(agent.cfg.seed * 1_000_003 + agent.steps)
    # checkpoints from before the online measure: it counts from the resume on
    correct, agent.online_seen = (int(v) for v in state.get("online", (0, 0)))
    agent.online_hits.fill_(correct)
    agent.trained_rows, agent.forward_rows = (int(v) for v in state.get("compute", (0, 0)))
    if agent.gate is not None and "gate" in state:
        agent.gate.load_state_dict(state["gate"])
    if agent.average is not None and "average" in state:
        agent.average.load_state_dict(state["average"], agent.steps)
    if "classes_seen" in state:
        agent.classes_seen.copy_(state["classes_seen"].to(device))
        agent.last_new_class_step.fill_(int(state["last_new_class_step"]))
    agent.memory.load_state_dict(state["memory"], agent.store)


def check(agent, state: dict) -> None:
    needed = ["memory", "model", "torch_rng", "task_classes", "counters"]
    missing = [k for k in needed if k not in state]
    if agent.method.state_dict() and not ({"method", "rates"} & set(state)):
        missing.append("method")
    if missing:
        raise ValueError(f"agent state lacks {missing}")
    own = agent.model.state_dict()
    if set(state["model"]) != set(own) or any(
        tuple(state["model"][k].shape) != tuple(v.shape) for k, v in own.items()
    ):
        raise ValueError("agent state's model does not match this agent's model")
    ids = state["memory"]["store_ids"].numpy()
    if len(ids) > agent.memory.capacity:
        raise ValueError(
            f"agent state holds {len(ids)} memories, capacity is {agent.memory.capacity}"
        )
    absent = ids[agent.store.catalog.rows_of(ids) < 0]
    if len(absent):
        raise MemoryNotFound(f"agent state's memories {absent[:10].tolist()} are not in the store")
