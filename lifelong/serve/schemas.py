"""Request and response bodies of the HTTP API (pydantic: validated, and in /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class ObserveBody(_Body):
    x: list[Any] = Field(description="examples: a list of N arrays of the run's input shape")
    y: list[Any] | None = Field(
        None,
        description="N integer labels in 0..n_classes-1; leave out to send them later "
        "(POST /v1/labels): the batch is answered now and learned when they come",
    )
    task_id: int | None = Field(None, ge=0, description="the task these examples belong to")


class Receipt(BaseModel):
    seq: int = Field(description="the record's number in the ingest log")
    experience: int
    first_position: int | None = Field(
        description="stream position of the first example (none until its labels come)"
    )
    last_position: int | None = Field(description="stream position of the last example")
    duplicate: bool = Field(description="a retry of a batch already taken: nothing was added")
    queued_examples: int = Field(description="examples acknowledged but not learned yet")
    awaiting_labels: bool = Field(False, description="sent without labels: POST /v1/labels")
    predicted: list[int] | None = Field(
        None,
        description="a batch sent without labels: the published weights' answers on arrival "
        "(none before anything is learned)",
    )


class LabelsBody(_Body):
    seq: int = Field(ge=1, description="the batch's seq, from its observe receipt")
    y: list[Any] = Field(description="one integer label per example of that batch")


class LabelsReceipt(BaseModel):
    seq: int = Field(description="the labels' own record number in the ingest log")
    batch: int = Field(description="the seq of the batch they label")
    experience: int = Field(description="the experience it is learned in (open now)")
    first_position: int = Field(description="stream position of its first example")
    last_position: int
    duplicate: bool = Field(description="these labels were taken before: nothing was added")
    queued_examples: int
    arrival_hits: int | None = Field(
        description="how many of the answers given on arrival were right"
    )


class EndBody(_Body):
    x_test: list[Any] | None = Field(None, description="held-out examples of this experience")
    y_test: list[Any] | None = Field(None, description="their labels")


class EndReceipt(BaseModel):
    seq: int
    experience: int = Field(description="the experience just ended")
    test_examples: int
    duplicate: bool


class PredictBody(_Body):
    x: list[Any] = Field(description="examples to label")
    adapt: bool = Field(
        False, description="MbPA++ local adaptation on each example's nearest memories"
    )


class Prediction(BaseModel):
    labels: list[int]
    probabilities: list[list[float]]
    step: int = Field(description="the training step of the weights that answered")
    experience: int


class SearchBody(_Body):
    key: list[float] | None = Field(None, description="a key vector of the memory's dimension")
    x: list[Any] | None = Field(None, description="or one example: searched by its key")
    k: int = Field(10, ge=1, le=1000)
    label: int | None = Field(None, description="only memories of this label")
    task: int | None = Field(None, description="only memories of this task")


class Memory(BaseModel):
    id: int
    label: int
    task: int | None
    experience: int | None
    position: int | None
    written_at: float | None = None
    replay_count: int | None = None
    last_loss: float | None = None
    distance: float | None = None


class SearchResult(BaseModel):
    memories: list[Memory]


class Problem(BaseModel):
    detail: str
