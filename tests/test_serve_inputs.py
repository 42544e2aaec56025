"""Bounded inputs: archives are measured before they are inflated, a batch the queue can never
hold is a 413, a reused idempotency key with other data is a 409, and out-of-range numbers are
reported as they were sent (never a 500, never an old receipt, nothing stored)."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lifelong.config import RunConfig
from lifelong.follow import FolderStream
from lifelong.serve.app import create_app
from lifelong.serve.service import Service
from streams import StreamError
from streams.npz import NpzError, NpzTooLarge, read_npz
from tests.serve_helpers import SMALL, digit_tasks

CFG = RunConfig(**dict(SMALL, stream="serve"))
NPZ = {"content-type": "application/x-npz"}


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def lying_header(shape: tuple[int, ...]) -> bytes:
    """An archive whose one member declares a huge array and holds none of it: inflating it
    as np.load does would ask for the whole array."""
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", member)
    return buf.getvalue()


@pytest.fixture
def client(tmp_path):
    # the learner is not started: these requests are about what is acknowledged
    service = Service(CFG, tmp_path / "run", max_queue=100, echo=lambda m: None)
    yield service, TestClient(create_app(service, max_bytes=2 << 20))
    service.shutdown()


def test_a_zip_bomb_is_refused_before_it_is_inflated(client):
    """POST a 0.1 MB .npz that inflates to 13 MB (limit 2 MiB), one whose header declares
    4 TB, and a text body sent as .npz.
    Expect: 413 naming the limit (the 4 TB one refused unread), 400 "not an npz archive";
    nothing stored."""
    service, http = client
    bomb = npz(x=np.zeros((50, 64 << 10), np.float32), y=np.zeros(50, np.int64))
    assert len(bomb) < 100_000  # small on the wire, 13 MB inflated, limit 2 MiB
    r = http.post("/v1/observe", content=bomb, headers=NPZ)
    assert r.status_code == 413, r.text
    assert "2,097,152-byte limit" in r.json()["detail"]
    # a header declaring 4 TB of floats with no bytes behind it: refused unread
    r = http.post("/v1/observe", content=lying_header((10**6, 10**6)), headers=NPZ)
    assert r.status_code == 413 and "(1000000, 1000000)" in r.json()["detail"]
    r = http.post("/v1/observe", content=b"x,y\n1,2\n", headers=NPZ)
    assert r.status_code == 400 and "not an npz archive" in r.json()["detail"]
    assert service.log.received == 0


def test_a_batch_larger_than_the_queue_is_a_413_naming_the_largest_accepted(client):
    """POST a batch of 101 examples to a server with --max-queue 100.
    Expect: 413 saying the largest batch accepted (not a 429 an obedient client retries
    forever); 100 examples are taken."""
    service, http = client
    x, y = np.zeros((101, 64), np.float32), np.zeros(101, np.int64)
    r = http.post("/v1/observe", content=npz(x=x, y=y), headers=NPZ)
    assert r.status_code == 413, r.text
    assert "largest batch accepted is 100 examples" in r.json()["detail"]
    r = http.post("/v1/observe", content=npz(x=x[:100], y=y[:100]), headers=NPZ)
    assert r.status_code == 200 and service.log.received == 100


def test_a_reused_idempotency_key_with_other_data_is_a_409(client):
    """Reuse an Idempotency-Key with other examples, another task id, or for an experience end.
    Expect: 409 naming the key; the same data again (JSON or .npz) is the old receipt."""
    service, http = client
    task = digit_tasks()[0]
    body = {"x": task["x"][:10].tolist(), "y": task["y"][:10].tolist()}
    first = http.post("/v1/observe", json=body, headers={"Idempotency-Key": "k"})
    assert first.status_code == 200
    # the same data again (as an archive this time) is the same record
    same = npz(x=task["x"][:10], y=task["y"][:10])
    again = http.post("/v1/observe", content=same, headers={**NPZ, "Idempotency-Key": "k"})
    assert again.status_code == 200 and again.json()["duplicate"]
    other = {"x": task["x"][10:20].tolist(), "y": task["y"][10:20].tolist()}
    r = http.post("/v1/observe", json=other, headers={"Idempotency-Key": "k"})
    assert r.status_code == 409, r.text
    assert "'k' was first used for a different batch" in r.json()["detail"]
    r = http.post("/v1/observe", json={**body, "task_id": 3}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 409
    r = http.post("/v1/experiences/end", json={}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 409 and "different batch" in r.json()["detail"]
    assert service.log.received == 10 and service.log.experience == 0


def test_out_of_range_numbers_are_reported_as_sent(client):
    """POST a label of 1e30, and task ids of 2**63, 10**40 and uint64 max.
    Expect: 400 reporting the label as sent (1e+30) and naming task_id, never a 500."""
    service, http = client
    one = [[0.5] * 64]
    r = http.post("/v1/observe", json={"x": one, "y": [1e30]})
    assert r.status_code == 400 and "label at index 0 is 1e+30" in r.json()["detail"]
    r = http.post("/v1/observe", json={"x": one, "y": [1], "task_id": 2**63})
    assert r.status_code == 400 and "task_id" in r.json()["detail"], r.text
    r = http.post("/v1/observe", json={"x": one, "y": [1], "task_id": 10**40})
    assert r.status_code == 400 and "task_id" in r.json()["detail"], r.text
    body = npz(x=np.zeros((1, 64)), y=np.ones(1, np.int64), task_id=np.uint64(2**64 - 1))
    r = http.post("/v1/observe", content=body, headers=NPZ)
    assert r.status_code == 400 and "task_id" in r.json()["detail"], r.text
    assert service.log.received == 0


def test_archives_keep_their_arrays_exactly():
    x = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    got = read_npz(npz(x=x, empty=np.zeros((0, 5), np.float32)), 1000)
    assert np.array_equal(got["x"], x) and got["x"].flags.writeable
    assert got["empty"].shape == (0, 5)
    with pytest.raises(NpzError, match="object arrays are not accepted"):
        read_npz(npz(o=np.array([{"a": 1}], dtype=object)), 1000)
    with pytest.raises(NpzTooLarge, match="over the 95-byte limit"):
        read_npz(npz(x=x), 95)


def test_a_task_file_is_measured_before_it_is_inflated(tmp_path):
    """Drop a text file named .npz, then an archive declaring a 4 TB array, in a follow folder.
    Expect: "not an npz archive"; the 4 TB array refused unread, naming the limit."""
    (tmp_path / "a.npz").write_text("x,y\n1,2\n")
    folder = FolderStream(tmp_path, 10, poll_seconds=0.01, idle_timeout=0.0, echo=lambda m: 0)
    with pytest.raises(StreamError, match=r"a.npz is not an npz archive"):
        folder.take_next()
    (tmp_path / "a.npz").unlink()
    (tmp_path / "b.npz").write_bytes(lying_header((10**6, 10**6)))
    with pytest.raises(StreamError, match=r"b.npz: x.npy: a float32 array .*split it"):
        folder.take_next()
