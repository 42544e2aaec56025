"""The learner on a device: everything it keeps lives there, a step reads nothing back to the
host, and a checkpoint resumes on another device. Run on the CPU by ``make test``, on every
GPU by ``make test-gpu`` (``LIFELONG_TEST_DEVICES``)."""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch

import streams
from lifelong.config import ConfigError, RunConfig
from lifelong.learner.agent import Agent, StreamSpec
from lifelong.runner import RunHooks, run
from tests.test_agent import BATCH, make_agent, train

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def two_exp():
    return streams.get_stream("split-digits", experiences=2, seed=0)


def _tensors_of(agent: Agent) -> dict[str, torch.Tensor]:
    m = agent.memory
    found = {
        "weights": next(agent.model.parameters()),
        "memory x": m.x,
        "memory info": m.info,
        "replays": m.replays,
        "gate": agent.gate.weights,
        "prototypes": agent.gate.sums,
        "average": agent.average.flat,
        "task masks": agent.masks.table,
        "classes seen": agent.classes_seen,
        "online hits": agent.online_hits,
    }
    return found


def test_everything_the_learner_keeps_lives_on_its_device(two_exp, device):
    agent = make_agent(two_exp, memory=100, device=device)
    rows = train(agent, two_exp, list(two_exp))
    where = torch.device(device)
    for name, t in _tensors_of(agent).items():
        assert t.device.type == where.type, name
    loss = agent.observe(two_exp[1].x_train[:BATCH], two_exp[1].y_train[:BATCH])
    assert loss.dim() == 0 and loss.device.type == where.type
    assert agent.predict(two_exp[0].x_test).device.type == "cpu"  # answers come home
    assert rows[-1][0] > 0.5 and rows[-1][1] > 0.5  # it learned both experiences


class HostRead(AssertionError):
    pass


@contextlib.contextmanager
def no_host_reads(device: str):
    """Any read of a tensor's value by the host fails: ``.item()``, ``.tolist()``,
    ``.numpy()``, ``.cpu()``, ``bool()``/``int()``/``float()`` of a tensor; on a GPU also any
    synchronisation at all (CUDA's sync debug mode)."""
    names = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__")
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def refuse(name):
        def read(self, *args, **kwargs):
            raise HostRead(f"the step read a tensor back to the host ({name})")

        return read

    for n in names:
        setattr(torch.Tensor, n, refuse(n))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the default: five updates, the controller, the weight average
        {"iters": 1, "replay_batch": 10},  # ours-1x
        {"gate": False, "average_weights": 0.0, "method": "er"},
        {"replay_policy": "uniform", "method": "er-ace"},
        {"stream_name": "split-task-mnist5k"},  # task masks
    ],
)
def test_a_step_reads_nothing_back_to_the_host(device, settings):
    settings = dict(settings)
    stream = streams.get_stream(settings.pop("stream_name", "split-mnist5k"), seed=0)
    agent = make_agent(stream, memory=60, device=device, **settings)
    e = stream[0]
    x = e.x_train[: 60 * BATCH].to(device)
    y = e.y_train[: 60 * BATCH].to(device)
    for b in range(0, 40 * BATCH, BATCH):  # fills the memory; captures, on a GPU
        agent.observe(x[b : b + BATCH], y[b : b + BATCH], task_id=e.task_id, checked=True)
    with no_host_reads(device):
        for b in range(40 * BATCH, 60 * BATCH, BATCH):
            agent.observe(x[b : b + BATCH], y[b : b + BATCH], task_id=e.task_id, checked=True)
    assert agent.steps == 60 and 0 < agent.online_correct <= 600


def test_a_checkpoint_resumes_on_another_device(tmp_path, device):
    """A run stopped on one device resumes on the other (``--device`` may change on resume:
    it is not part of the run's identity); CPU to CPU it ends with the numbers of an
    uninterrupted run, through the same map-location path a GPU's checkpoint takes."""
    base = dict(stream="split-digits", experiences=2, memory=60, progress=False, seed=3)
    whole = run(RunConfig(**base), tmp_path / "whole", echo=lambda m: None)
    stop = threading.Event()
    halves = tmp_path / "halves"
    first = run(
        RunConfig(**base, device=device),
        halves,
        echo=lambda m: None,
        hooks=_StopAfterFirstExperience(stop),
        stop_event=stop,
    )
    assert first.interrupted and not first.summary["complete"]
    resumed = run(RunConfig(**base, device="cpu"), halves, echo=lambda m: None)
    assert resumed.summary["complete"]
    if torch.device(device).type == "cpu":
        assert resumed.matrix.tolist() == whole.matrix.tolist()
    else:  # another device draws other random numbers: the same learning, not the same bits
        assert resumed.summary["average_accuracy"] > 0.6


class _StopAfterFirstExperience(RunHooks):
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def experience_ended(self, agent, progress, summary) -> None:
        self.stop.set()  # the run stops a batch into the next experience, checkpointed


def test_an_unknown_or_absent_device_is_one_clear_error(two_exp):
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        RunConfig(device="gpu").validate()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is present"):
            make_agent(two_exp, device="cuda")
    count = torch.cuda.device_count()
    with pytest.raises(ConfigError, match="CUDA device"):
        make_agent(two_exp, device=f"cuda:{count + 1}")


def test_an_absent_gpu_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    from lifelong import cli

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    absent = f"cuda:{count}" if count else "cuda"  # one past the last GPU there is
    out = tmp_path / "r"
    code = cli.main(["run", "--stream", "split-digits", "--device", absent, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "CUDA device" in err[0], err
    assert not out.exists()
    if not count:  # bf16 on the CPU: refused the same way, and the folder is not made
        code = cli.main(["run", "--stream", "split-digits", "--bf16", "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "bf16 autocast needs a CUDA device" in err[0]
        assert not out.exists()


def test_the_stream_spec_and_store_stay_on_the_host(two_exp, device):
    agent = make_agent(two_exp, memory=40, device=device)
    train(agent, two_exp, [two_exp[0]])
    agent.flush_memory()
    assert len(agent.store) == 40  # flushed to SQLite and FAISS, on the host
    hits = agent.store.search(agent.keys(two_exp[0].x_test[:3]), k=2)
    assert hits.ids.shape == (3, 2)
    assert isinstance(agent.spec, StreamSpec)
