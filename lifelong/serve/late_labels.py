"""Labels that come after their examples, for a served run (the stream of Csaba et al.,
"Label Delay in Online Continual Learning", NeurIPS 2024, as a service takes it).

A client sends a batch without ``y``: it is answered at once with the published weights'
labels (the answer the stream would act on) and committed to the ingest log with them. Its
labels come later, by the batch's ``seq`` (``POST /v1/labels``); they are committed too, and
the learner learns the batch then, in log order. Both appends are as durable as
``observe`` (committed before the answer) and as idempotent (an ``Idempotency-Key``, and
labels are taken once per batch). How often the answers on arrival were right is the
stream's online accuracy on arrival, counted in the log, so it survives restarts.
"""

from __future__ import annotations

import numpy as np
import torch

from lifelong.serve.ingest_log import Receipt
from lifelong.serve.refusals import BadRequest, check_task_id
from lifelong.serve.service import Service
from streams import StreamError
from streams.validate import as_labels


class LateLabelDoor:
    """Batches in now, their labels later (the HTTP handlers' threads call it)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def observe(self, x, task_id: int | None, key: str | None) -> Receipt:
        """Answer a batch sent without labels and commit it with those answers (None before
        anything is learned): it waits in the log, not in the learner's queue."""
        service = self.service
        service.refuse_if_failed()
        try:
            n = len(x)
        except TypeError:
            raise BadRequest("batch: x is not a list of examples") from None
        xs, _ = service.check_arrays(x, np.zeros(n, np.int64), "batch")
        check_task_id(task_id)
        service.check_batch_size(len(xs))  # its labels must fit the queue when they come
        snap = service.snapshot
        predicted = None if snap is None else snap.predict(torch.from_numpy(xs))[0]
        with service.disk_watch():
            return service.log.append_unlabelled(xs, task_id, key, predicted)

    def label(self, seq: int, y, key: str | None) -> Receipt:
        """Commit the labels of batch ``seq``; the learner learns it when it reads them."""
        service = self.service
        service.refuse_if_failed()
        try:
            ys = as_labels(np.asarray(y), "labels", service.cfg.n_classes).numpy()
        except (StreamError, ValueError) as exc:
            raise BadRequest(str(exc)) from None
        if ys.ndim != 1 or len(ys) == 0:
            raise BadRequest("labels: send one integer label per example of the batch")
        service.make_room(len(ys))
        with service.disk_watch():
            return service.log.append_labels(seq, ys, key)
