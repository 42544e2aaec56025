"""The default agent's learned controller: how far to trust the network's head, and how far
the memory's class prototypes, learned online from the stream itself.

A prediction mixes two experts: the head's logits, and the scaled cosine similarity of an
example's embedding to each class's prototype, the mean normalised embedding of that class's
memories (nearest-class-mean, as iCaRL and SCR predict). The prototypes do not share the
head's bias towards the newest classes, which is most of what a class-incremental learner
forgets at low compute; on a domain-incremental stream the head knows more. Which to trust
is learned from the meta-objective a stream gives for free, before the network learns a
batch: the incoming examples, which it has never seen, and the memories about to be
replayed, which stand for the past (where a head biased towards the newest classes shows
it); one SGD step on the mixture's cross-entropy over both moves the two weights (kept
non-negative). No boundary is needed. On the incoming batch alone it learned to lean on the
prototypes more than the final test wants once the head is well trained (0.001-0.005 below
the head alone at five updates a batch); with the replayed memories it is level with it or
within 0.003 there (seeds 0-4) and keeps its gains at one update a batch.

While learning, the prototypes are running sums of the normalised embeddings the
controller sees (incoming and replayed examples, at the weights of the time; recomputing
them from the memory every 20 or 50 steps gave the same accuracy at twice the cost); to
predict, they are computed
afresh from the memory at the current weights, and not kept, so evaluating never changes
what the agent learns. Cost: the embeddings of the incoming batch and of the first update's
replay batch (one forward, which also serves the online accuracy) and a few small tensor
operations.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

from lifelong.learner.losses import mask_to

SCALE = 10.0  # cosine similarities lie in [-1, 1]: scaled to the range of logits
LR = 0.1  # SGD step of the two weights


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, D) mean normalised embedding of each class (zeros for a class with no memory)."""
    sums = embeddings.new_zeros(n_classes, embeddings.shape[1])
    sums.index_add_(0, labels, F.normalize(embeddings, dim=1))
    return F.normalize(sums, dim=1)


def mixed_logits(
    weights: torch.Tensor,
    embeddings: torch.Tensor,
    head_logits: torch.Tensor,
    protos: torch.Tensor | None,
) -> torch.Tensor:
    """The controller's prediction: w_head * logits + w_proto * SCALE * cos(embedding, proto)."""
    if protos is None:
        return head_logits
    return weights[0] * head_logits + weights[1] * _similarities(embeddings, protos)


def _similarities(embeddings: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    return SCALE * F.normalize(embeddings, dim=1) @ protos.T


class _PerDevice(dict):
    def __missing__(self, device: torch.device) -> torch.Tensor:
        self[device] = torch.tensor(-1.0, device=device)
        return self[device]


_MINUS_ONE = _PerDevice()


def _unit_rows(x: torch.Tensor, scale_only: bool = False) -> torch.Tensor:
    """Each row scaled to unit length (``F.normalize``'s arithmetic without its Python
    wrappers, which cost more than it at a batch of 20); ``scale_only``: the factors."""
    scale = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min_(1e-12).reciprocal_()
    return scale if scale_only else x * scale


@cache
def _rows(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device)


class PredictionGate:
    """The two mixing weights and the prototypes they were learned with, on the learner's
    device; ``learn`` reads nothing back to the host."""

    def __init__(self, n_classes: int, device: torch.device | str = "cpu") -> None:
        self.n_classes = n_classes
        self.device = torch.device(device)
        self.weights = torch.tensor([1.0, 0.0], device=self.device)  # the head alone at first
        self.protos: torch.Tensor | None = None
        self.sums: torch.Tensor | None = None  # of normalised embeddings, per class

    @torch.no_grad()
    def learn(
        self,
        embeddings: torch.Tensor,
        head_logits: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One step on rows the network is about to learn from (the incoming batch first,
        then the memories about to be replayed); returns the mixture's logits before the
        step (the agent's prediction of them; the incoming rows' give the online accuracy).
        The gradient of the cross-entropy in each weight is in closed form: the mean over
        the rows of (softmax - one-hot) . expert."""
        if self.sums is None:
            self.sums = embeddings.new_zeros(self.n_classes, embeddings.shape[1])
            self.protos = self.sums.clone()
        unit = _unit_rows(embeddings)
        sims = (unit @ self.protos.T).mul_(SCALE)
        experts = torch.stack([head_logits, sims])  # (2, rows, classes)
        logits = mask_to((experts * self.weights.view(2, 1, 1)).sum(0), mask)
        # softmax minus the one-hot of y, in place (F.one_hot reads the labels on the host)
        residual = torch.softmax(logits, dim=1)
        residual.index_put_((_rows(len(y), y.device), y), _MINUS_ONE[y.device], accumulate=True)
        grad = (experts * residual).sum((1, 2))
        self.weights.sub_(grad, alpha=LR / len(y)).clamp_(min=0)
        self.sums.index_add_(0, y, unit)  # after predicting: the incoming rows were unseen
        torch.mul(self.sums, _unit_rows(self.sums, True), out=self.protos)
        return logits  # protos in place: a captured step (a CUDA graph) reads the same tensor

    def state_dict(self) -> dict:
        state = {"weights": self.weights.cpu()}
        if self.sums is not None:
            state["sums"] = self.sums.cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.weights = state["weights"].to(self.device, copy=True)
        sums = state.get("sums")
        self.sums = None if sums is None else sums.to(self.device, copy=True)
        self.protos = None if sums is None else self.sums * _unit_rows(self.sums, True)
