"""The network an Avalanche strategy trains in ``compare`` and how its accuracy is read: our
MLP (a head per task on task-incremental streams), evaluated by the same function for every
strategy."""

from __future__ import annotations

import torch

from lifelong.learner.models import build_model

_CURRENT_TASK = object()  # a multi-head model called without task labels (see baseline_model)


def baseline_model(stream, hidden: int) -> torch.nn.Module:
    """The network an Avalanche strategy trains: our MLP, and on a task-incremental stream
    the same body under Avalanche's multi-head classifier (a head per task, grown as tasks
    arrive, each masked to its task's classes), the like-for-like of our agent's task masks.
    One shared head would make them tell apart classes that are never asked of them."""
    mlp = build_model("mlp", stream.input_shape, stream.n_classes, hidden)
    if not stream.task_aware:
        return mlp
    from avalanche.models import MultiHeadClassifier, MultiTaskModule

    class MultiHeadMLP(MultiTaskModule):
        def __init__(self) -> None:
            super().__init__()
            self.features = mlp.features
            # every head as wide as the label space, so a replay batch of mixed tasks stacks
            self.classifier = MultiHeadClassifier(hidden, initial_out_features=stream.n_classes)
            self.max_class_label = stream.n_classes  # the width a mixed batch's output takes
            self.current_task = 0

        def adaptation(self, experience) -> None:
            super().adaptation(experience)
            self.current_task = int(experience.task_label)

        def forward(self, x: torch.Tensor, task_labels=_CURRENT_TASK) -> torch.Tensor:
            # Avalanche's DER computes its buffer's logits with model(x), with no task
            # labels, on the experience being trained: that experience's head answers them.
            # None keeps Avalanche's meaning (every head's output, which LwF asks for).
            if task_labels is _CURRENT_TASK:
                task_labels = self.current_task
            return super().forward(x, task_labels)

        def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
            return self.classifier(self.features(x), task_label)

    return MultiHeadMLP()


@torch.no_grad()
def accuracies(model, experiences, device) -> list[float]:
    """Accuracy on each test set; a multi-head model answers with the task's head, and a task
    it has no head for yet has no answer (NaN)."""
    from avalanche.models import MultiTaskModule

    model.eval()
    out = []
    for e in experiences:
        x, y = e.x_test.to(device), e.y_test.to(device)
        if isinstance(model, MultiTaskModule):
            if str(e.task_id) not in model.classifier.classifiers:
                out.append(float("nan"))
                continue
            logits = model(x, int(e.task_id))
        else:
            logits = model(x)
        out.append(float((logits.argmax(1) == y).float().mean()))
    model.train()
    return out
