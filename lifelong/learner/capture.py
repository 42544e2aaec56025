"""``CapturedCall``: a step of tensor work run as one CUDA graph, replayed every time.

At the online protocol's batch (10 incoming, 10 replayed) a GPU step is bound by kernel
launches and host round trips, not arithmetic: the same reduced ResNet-18 step runs at
1,337 examples/s launched op by op and 5,967 replayed as one captured graph
(``../shared/gpu/README.md``). The learner's step is written for this: its inputs live in
static tensors the caller fills before each call, its state changes in place, and it reads
nothing back to the host, so the kernels it launched once can be replayed as they are.

A call runs eagerly for its first ``WARMUP`` uses (on a side stream, where lazily made
handles and workspaces come into being before capture), is captured on the next, and from
then on replayed. Each of those calls is a real step: the capture is followed by its first
replay. The capture is this thread's alone (``thread_local``: the CUDA calls of other
threads, a data loader's or a checkpoint writer's, neither join nor spoil it), and a capture
that fails anyway is said once and the call runs eagerly from then on: a captured step is
a speed-up, never a reason for a run to stop. Anywhere but on a CUDA device it is a plain
call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

WARMUP = 3  # eager calls before the capture


def _used_on(out, stream) -> None:
    """Tell the allocator that the tensors a side-stream call made are used on ``stream``
    too, so their memory is not handed out again before that stream is done with them."""
    if isinstance(out, torch.Tensor):
        out.record_stream(stream)
    elif isinstance(out, (tuple, list)):
        for item in out:
            _used_on(item, stream)


class CapturedCall:
    def __init__(self, fn: Callable[[], object], device: torch.device) -> None:
        self.fn = fn
        self.cuda = device.type == "cuda"
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: object = None
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.failed: str | None = None  # why the capture failed, if it did

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self):
        if not self.cuda or self.failed:
            return self.fn()
        if self.graph is not None:
            self.graph.replay()
            return self.out
        self.calls += 1
        current = torch.cuda.current_stream(self.stream.device)
        self.stream.wait_stream(current)
        if self.calls <= WARMUP:
            with torch.cuda.stream(self.stream):
                out = self.fn()
            current.wait_stream(self.stream)
            _used_on(out, current)
            return out
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                out = self.fn()
        except Exception as exc:  # nothing captured ran: the step runs eagerly instead
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            message = f"the step runs op by op: capturing it as a CUDA graph failed ({self.failed})"
            warnings.warn(message, stacklevel=2)
            current.wait_stream(self.stream)
            return self.fn()
        current.wait_stream(self.stream)
        self.graph, self.out = graph, out
        graph.replay()
        return self.out


class StaticStep:
    """One shape of a step, captured: static copies of its inputs, the step as a
    ``CapturedCall`` over them, and ``then``, a second call that reads the step's output
    (the weight average's watch), captured once the step is."""

    def __init__(self, step: Callable, then: Callable, inputs: tuple, device) -> None:
        self.inputs = tuple(t.clone() for t in inputs)
        self.out = None
        self.step = CapturedCall(lambda: step(*self.inputs), device)
        self._then = then
        self.then_call = CapturedCall(self._then_on_static, device)

    def __call__(self, *inputs):
        for static, given in zip(self.inputs, inputs, strict=True):
            static.copy_(given, non_blocking=True)
        self.out = self.step()
        return self.out

    def made(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` is the last output's live logits (the step's own)."""
        return self.out is not None and self.out.live_logits is tensor

    def _then_on_static(self) -> None:
        self._then(self.inputs[0], self.inputs[1], self.out.live_logits)

    def then(self) -> None:
        """``then`` on this step's batch and output: captured once the step is (it reads the
        step's captured output), plain before."""
        if self.step.captured:
            self.then_call()
        else:
            self._then_on_static()
