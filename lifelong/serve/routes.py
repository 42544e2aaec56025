"""The HTTP routes: ``learn`` (observe, late labels, end an experience) and ``query``
(predict, memory, the run, metrics). Handlers decode and answer; the ``Service`` does the work."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time

import numpy as np
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError

from lifelong.serve import schemas
from lifelong.serve.ingest_log import LabelCountMismatch, LogRefused, UnknownBatch
from lifelong.serve.late_labels import LateLabelDoor
from lifelong.serve.prometheus import prometheus_text
from lifelong.serve.refusals import (
    INT64_MAX,
    BadRequest,
    BatchTooLarge,
    LogDiskFull,
    QueueFull,
)
from lifelong.serve.service import Service
from stores import MemoryNotFound
from streams.npz import NpzError, NpzTooLarge, read_npz

NPZ_TYPES = ("application/x-npz", "application/octet-stream")
_ERRORS = {400: {"model": schemas.Problem}, 409: {"model": schemas.Problem}}


def _body_doc(model) -> dict:
    """OpenAPI: the body is JSON (this model) or an .npz archive of the same arrays."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema()},
                "application/x-npz": binary,
            },
        }
    }


async def _arrays(request: Request, model, max_bytes: int) -> dict:
    """The body as the model's fields: JSON validated by the model, or an ``.npz`` archive
    whose arrays may take no more than ``max_bytes`` inflated (checked before inflating)."""
    body = await _read(request, max_bytes)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind in NPZ_TYPES:
        try:
            fields = read_npz(body, max_bytes, "body")
        except NpzTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except NpzError as exc:
            raise HTTPException(400, str(exc)) from None
        unknown = set(fields) - set(model.model_fields)
        if unknown:
            raise HTTPException(
                400, f"unknown array(s) {sorted(unknown)}; expected {sorted(model.model_fields)}"
            )
        return fields
    if kind != "application/json":
        raise HTTPException(415, f"send application/json or application/x-npz, not {kind}")
    try:
        return dict(model.model_validate_json(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg']}") from None


async def _read(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) past ``max_bytes`` whatever Content-Length says."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body of {declared} bytes is over the {max_bytes}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _task(value) -> int | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iu" or not 0 <= int(arr) <= INT64_MAX:
        raise HTTPException(400, f"task_id must be one integer in 0..{INT64_MAX}, got {value!r}")
    return int(arr)


@contextlib.contextmanager
def _ingest_errors():
    """What an append can meet, as answers: 429 behind, 413 a batch the queue cannot hold,
    400 bad data, 404 labels of no batch, 409 against the log, 507 a full disk, 503 when the
    learner has stopped."""
    try:
        yield
    except QueueFull as exc:
        raise HTTPException(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
    except BatchTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except (BadRequest, LabelCountMismatch) as exc:
        raise HTTPException(400, str(exc)) from None
    except UnknownBatch as exc:
        raise HTTPException(404, str(exc)) from None
    except LogRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except LogDiskFull as exc:
        raise HTTPException(507, str(exc)) from None
    except RuntimeError as exc:
        raise HTTPException(503, str(exc)) from None


def learn_router(service: Service, max_bytes: int) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["learn"])
    late = LateLabelDoor(service)

    @router.post(
        "/observe",
        response_model=schemas.Receipt,
        responses={**_ERRORS, 429: {"model": schemas.Problem}},
        openapi_extra=_body_doc(schemas.ObserveBody),
    )
    async def observe(
        request: Request, idempotency_key: str | None = Header(None, max_length=200)
    ) -> schemas.Receipt:
        """Learn a labelled batch. Answered once the batch is committed to the ingest log;
        a retry with the same ``Idempotency-Key`` header is taken once."""
        body = await _arrays(request, schemas.ObserveBody, max_bytes)
        if "x" not in body:
            raise HTTPException(400, "a batch needs x (and y, or its labels later)")
        task = _task(body.get("task_id"))
        if body.get("y") is None:
            with _ingest_errors():
                r = await run_in_threadpool(late.observe, body["x"], task, idempotency_key)
            return schemas.Receipt(
                seq=r.seq,
                experience=r.experience,
                first_position=None,
                last_position=None,
                duplicate=r.duplicate,
                queued_examples=service.queue_depth(),
                awaiting_labels=True,
                predicted=None if r.predicted is None else r.predicted.tolist(),
            )
        with _ingest_errors():
            r = await run_in_threadpool(
                service.observe, body["x"], body["y"], task, idempotency_key
            )
        return schemas.Receipt(
            seq=r.seq,
            experience=r.experience,
            first_position=r.first_position,
            last_position=r.first_position + r.n - 1,
            duplicate=r.duplicate,
            queued_examples=service.queue_depth(),
        )

    @router.post(
        "/labels",
        response_model=schemas.LabelsReceipt,
        responses={**_ERRORS, 404: {"model": schemas.Problem}, 429: {"model": schemas.Problem}},
        openapi_extra=_body_doc(schemas.LabelsBody),
    )
    async def labels(
        request: Request, idempotency_key: str | None = Header(None, max_length=200)
    ) -> schemas.LabelsReceipt:
        """The labels of a batch sent without them: committed, then the batch is learned.
        Labels are taken once per batch; a retry with the same labels answers the same."""
        body = await _arrays(request, schemas.LabelsBody, max_bytes)
        if "seq" not in body or "y" not in body:
            raise HTTPException(400, "labels need seq (the batch's) and y")
        seq = np.asarray(body["seq"])
        if seq.shape != () or seq.dtype.kind not in "iu" or not 1 <= int(seq) <= INT64_MAX:
            raise HTTPException(400, f"seq must be one integer >= 1, got {body['seq']!r}")
        with _ingest_errors():
            r = await run_in_threadpool(late.label, int(seq), body["y"], idempotency_key)
        return schemas.LabelsReceipt(
            seq=r.seq,
            batch=int(seq),
            experience=r.experience,
            first_position=r.first_position,
            last_position=r.first_position + r.n - 1,
            duplicate=r.duplicate,
            queued_examples=service.queue_depth(),
            arrival_hits=r.hits,
        )

    @router.post(
        "/experiences/end",
        response_model=schemas.EndReceipt,
        responses=_ERRORS,
        openapi_extra=_body_doc(schemas.EndBody),
    )
    async def end_experience(
        request: Request, idempotency_key: str | None = Header(None, max_length=200)
    ) -> schemas.EndReceipt:
        """End the open experience (a task boundary), with its held-out test set for the
        accuracy matrix. Task-free streams never call this."""
        body = await _arrays(request, schemas.EndBody, max_bytes)
        xt, yt = body.get("x_test"), body.get("y_test")
        if (xt is None) != (yt is None):
            raise HTTPException(400, "send both x_test and y_test, or neither")
        with _ingest_errors():
            r = await run_in_threadpool(service.end_experience, xt, yt, idempotency_key)
        return schemas.EndReceipt(
            seq=r.seq, experience=r.experience, test_examples=r.n, duplicate=r.duplicate
        )

    return router


def query_router(service: Service, max_bytes: int) -> APIRouter:
    router = APIRouter(tags=["query"])

    @router.post(
        "/v1/predict",
        response_model=schemas.Prediction,
        responses={**_ERRORS, 503: {"model": schemas.Problem}},
        openapi_extra=_body_doc(schemas.PredictBody),
    )
    async def predict(request: Request) -> schemas.Prediction:
        """Labels and class probabilities from the last published weights (never waits for
        a training step)."""
        body = await _arrays(request, schemas.PredictBody, max_bytes)
        if "x" not in body:
            raise HTTPException(400, "predict needs x")
        try:
            labels, probs, snap = await run_in_threadpool(
                service.predict, body["x"], bool(body.get("adapt", False))
            )
        except BadRequest as exc:
            raise HTTPException(400, str(exc)) from None
        except LookupError as exc:
            raise HTTPException(503, str(exc)) from None
        return schemas.Prediction(
            labels=labels.tolist(),
            probabilities=np.round(probs, 6).tolist(),
            step=snap.step,
            experience=snap.experience,
        )

    @router.get("/v1/memory/stats")
    def memory_stats() -> dict:
        """Counts, settings and composition of the episodic store (as of the last
        checkpoint, which flushes the agent's memory to it)."""
        with _memory(service) as store:
            return store.stats()

    @router.get(
        "/v1/memory/picture",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {"model": schemas.Problem}},
    )
    def memory_picture(per_class: int = Query(8, ge=1, le=32)) -> Response:
        """What the agent remembers, as a PNG: a row per class of stored examples, oldest to
        newest, each with its task, age and replay count (the report's memory page)."""
        from lifelong.memory_pictures import plot_memory_grid  # matplotlib: on first use

        buf = io.BytesIO()
        with _memory(service) as store:
            drawn = plot_memory_grid(store, buf, per_class)
        if drawn is None:
            raise HTTPException(404, "the memory is empty: nothing to draw yet")
        return Response(buf.getvalue(), media_type="image/png")

    @router.post("/v1/memory/search", response_model=schemas.SearchResult, responses=_ERRORS)
    def memory_search(body: schemas.SearchBody) -> schemas.SearchResult:
        """The k nearest memories of a key, or of an example (by its key under the published
        weights), optionally of one label or task."""
        if (body.key is None) == (body.x is None):
            raise HTTPException(400, "give exactly one of key or x")
        if body.key is not None:
            query = np.asarray([body.key], np.float32)
        else:
            snap = service.snapshot
            if snap is None:
                raise HTTPException(503, "nothing learned yet: no weights to key an example")
            try:
                x, _ = service.check_arrays([body.x], [0], "search")
            except BadRequest as exc:
                raise HTTPException(400, str(exc)) from None
            import torch

            query = snap.keys(torch.from_numpy(x))
        where = {k: v for k, v in (("label", body.label), ("task", body.task)) if v is not None}
        with _memory(service) as store:
            if query.shape[1] != store.spec.dim:
                raise HTTPException(
                    400,
                    f"key has {query.shape[1]} values; this memory's keys have {store.spec.dim}",
                )
            found = store.search(query, body.k, where=where or None)
            ids = found.ids[0][found.ids[0] >= 0]
            records = {r["id"]: r for r in store.records(ids)}
        out = []
        for i, d in zip(found.ids[0], found.distances[0]):
            if i >= 0 and int(i) in records:
                out.append(schemas.Memory(**records[int(i)], distance=float(d)))
        return schemas.SearchResult(memories=out)

    @router.get("/v1/memory/{memory_id}", response_model=schemas.Memory, responses=_ERRORS)
    def memory(memory_id: int) -> schemas.Memory:
        """One memory's stored fields (not its key or value)."""
        with _memory(service) as store:
            rows = store.records([memory_id])
        if not rows:
            raise HTTPException(404, f"no memory {memory_id}")
        return schemas.Memory(**rows[0])

    @router.get("/v1/run")
    async def run_state(wait: float = Query(0, ge=0, le=3600)) -> dict:
        """The run so far: accuracy matrix, forgetting, throughput, queue, memory
        composition (published at every experience end and every few steps). With
        ``wait=SECONDS``, answers once everything acknowledged is learned and every ended
        experience evaluated, or when the seconds are up (``caught_up`` says which)."""
        deadline = time.monotonic() + wait
        while not service.caught_up() and time.monotonic() < deadline:
            if service.error is not None:
                break
            await asyncio.sleep(0.05)
        return {**service.state(), "caught_up": service.caught_up()}

    @router.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> str:
        """Prometheus text format."""
        return prometheus_text(service)

    @router.get("/healthz")
    def healthz() -> dict:
        """200 while the learner runs; 503 once it has failed or its log is not its own."""
        problem = service.health_problem()
        if problem is not None:
            raise HTTPException(503, problem)
        return {"status": service.view["status"]}

    return router


class _memory:
    """The read-only store, with 503 while there is none and 404 for a missing id."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def __enter__(self):
        self._cm = self.service.memory()
        try:
            return self._cm.__enter__()
        except LookupError as exc:
            raise HTTPException(503, str(exc)) from None

    def __exit__(self, kind, exc, tb):
        self._cm.__exit__(kind, exc, tb)
        if isinstance(exc, MemoryNotFound):
            raise HTTPException(404, str(exc)) from None
        return False
