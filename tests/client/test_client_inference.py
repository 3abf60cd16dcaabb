"""classify() and the model calls."""

from __future__ import annotations

import pytest

from fineserve.v1 import common_pb2
from fineserve_client import Classification, Client, parse_model_ref


def test_classify_accepts_paths_and_bytes_in_order(serve, tmp_path, inference_servicer):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"alpha")
    b = tmp_path / "b.jpg"
    b.write_bytes(b"beta")
    servicer = inference_servicer
    with Client(serve(servicer)) as client:
        results = client.classify(
            "pets/2", [a, b"gamma", str(b), bytearray(b"delta"), b"eps"], top_k=2, batch_size=2
        )
    assert [r.label for r in results] == ["alpha", "gamma", "beta", "delta", "eps"]
    assert [r.name for r in results] == [str(a), "bytes[1]", str(b), "bytes[3]", "bytes[4]"]
    assert results[0].top == [("alpha", 0.75), ("other", 0.25)]
    assert results[0].probability == 0.75
    assert results[0].model == "pets/2"
    assert [len(r.images) for r in servicer.requests] == [2, 2, 1]
    assert all(
        r.model == common_pb2.ModelRef(name="pets", version=2) and r.top_k == 2 for r in servicer.requests
    )


def test_classify_one(serve, inference_servicer):
    with Client(serve(inference_servicer)) as client:
        result = client.classify_one("pets", b"zeta", top_k=1)
    assert result == Classification(name="bytes[0]", top=[("zeta", 0.75)], model="pets/7")


def test_classify_rejects_a_single_path(tmp_path):
    with Client("127.0.0.1:1") as client, pytest.raises(TypeError):
        client.classify("pets", str(tmp_path / "a.jpg"))


def test_models(serve, models_servicer):
    with Client(serve(models_servicer)) as client:
        assert client.get_model("pets").ref.version == 3
        assert client.get_model("pets", 2).ref.version == 2
        assert client.get_model("pets/1").ref.version == 1
        assert [m.ref.version for m in client.list_models()] == [2, 1]
        assert client.delete_model("pets/2") == [common_pb2.ModelRef(name="pets", version=2)]


def test_parse_model_ref():
    assert parse_model_ref("pets") == ("pets", 0)
    assert parse_model_ref("pets", 4) == ("pets", 4)
    assert parse_model_ref("pets/4") == ("pets", 4)
    for bad in ("", "/3", "pets/x", "pets/-1"):
        with pytest.raises(ValueError):
            parse_model_ref(bad)
