"""Model adapters: one protocol for TorchScript, state dicts, callables, ONNX and score CSVs."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

from skinaudit.errors import ConfigError, DataError, ModelError, UnsafeCheckpointError
from skinaudit.imageio import read_image
from skinaudit.models import (CallableModel, PrecomputedScores, Preprocess, TorchModel, build_torchvision_model,
                              load_model, probabilities_from_outputs, score_dataset)

torch = pytest.importorskip("torch")


def test_probabilities_from_one_and_two_logits():
    z = np.array([-2.0, 0.0, 3.0])
    p1 = probabilities_from_outputs(z[:, None])
    assert np.allclose(p1, 1 / (1 + np.exp(-z)))
    two = np.stack([np.zeros(3), z], axis=1)  # softmax([0, z])[1] == sigmoid(z)
    assert np.allclose(probabilities_from_outputs(two), p1)
    assert np.allclose(probabilities_from_outputs(two, positive_index=0), 1 - p1)
    assert probabilities_from_outputs(np.array([[-1000.0], [1000.0]])).tolist() == [0.0, 1.0]
    with pytest.raises(ModelError, match="binary classifier"):
        probabilities_from_outputs(np.zeros((3, 7)))
    with pytest.raises(ModelError, match="non-finite"):
        probabilities_from_outputs(np.array([[np.nan, 0.0]]))


def test_preprocess_matches_paper_default():
    pre = Preprocess()
    assert pre.size == 299
    x = pre([np.full((50, 80, 3), 255, np.uint8)])
    assert x.shape == (1, 3, 299, 299) and x.dtype == np.float32
    assert np.allclose(x[0, :, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
                       atol=1e-5)
    with pytest.raises(ConfigError, match="image_size"):
        Preprocess(size=4)


def test_callable_model_checks_output():
    m = CallableModel(lambda imgs: [0.2] * len(imgs), name="const")
    assert m.predict_proba([np.zeros((40, 40, 3), np.uint8)] * 2).tolist() == [0.2, 0.2]
    with pytest.raises(ModelError, match="returned 1 scores for 2 images"):
        CallableModel(lambda imgs: [0.2]).predict_proba([np.zeros((40, 40, 3), np.uint8)] * 2)
    with pytest.raises(ModelError, match="outside"):
        CallableModel(lambda imgs: [1.5] * len(imgs)).predict_proba([np.zeros((40, 40, 3), np.uint8)])


@pytest.fixture(scope="module")
def real_images(shared_data):
    root = shared_data("isic2018-task3-test-224")
    paths = sorted((root / "images").glob("*.jpg"))[:4]
    return [read_image(p) for p in paths]


@pytest.mark.realdata
def test_paper_resnet50_state_dict_roundtrip(tmp_path, real_images):
    torch.manual_seed(0)
    net = build_torchvision_model("resnet50", num_outputs=2, paper_head=True).eval()
    sd = net.state_dict()
    assert "fc.1.weight" in sd and tuple(sd["fc.1.weight"].shape) == (2, 2048)
    torch.save(sd, tmp_path / "r50.pt")
    loaded = load_model(tmp_path / "r50.pt", arch="resnet50", image_size=64)
    direct = TorchModel(net, preprocess=Preprocess(size=64))
    s1, s2 = loaded.predict_proba(real_images), direct.predict_proba(real_images)
    assert s1.shape == (4,) and np.all((s1 >= 0) & (s1 <= 1))
    assert np.allclose(s1, s2, atol=1e-6)


@pytest.mark.realdata
@pytest.mark.parametrize("n_out", [1, 2])
def test_resnet18_standard_head_and_torchscript(tmp_path, real_images, n_out):
    torch.manual_seed(1)
    net = build_torchvision_model("resnet18", num_outputs=n_out).eval()
    assert "fc.weight" in net.state_dict()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates jit.script; still supported
        torch.jit.save(torch.jit.script(net), tmp_path / "ts.pt")
    a = load_model(tmp_path / "sd.pt", arch="resnet18", image_size=96).predict_proba(real_images)
    b = load_model(tmp_path / "ts.pt", image_size=96).predict_proba(real_images)
    c = TorchModel(net, preprocess=Preprocess(size=96)).predict_proba(real_images)
    assert np.allclose(a, c, atol=1e-6) and np.allclose(b, c, atol=1e-5)


def test_model_mode_restored():
    net = build_torchvision_model("resnet18", num_outputs=1)
    net.train()
    TorchModel(net, preprocess=Preprocess(size=32)).predict_proba([np.zeros((40, 40, 3), np.uint8)])
    assert net.training


@pytest.mark.realdata
def test_onnx_adapter(tmp_path, real_images):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(2)
    net = build_torchvision_model("resnet18", num_outputs=2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(1, 3, 64, 64), tmp_path / "m.onnx", input_names=["input"],
                          dynamic_axes={"input": {0: "n"}}, dynamo=False)
    onnx_scores = load_model(tmp_path / "m.onnx", image_size=64).predict_proba(real_images)
    torch_scores = TorchModel(net, preprocess=Preprocess(size=64)).predict_proba(real_images)
    assert np.allclose(onnx_scores, torch_scores, atol=1e-4)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"fc.weight": torch.zeros(1, 512), "evil": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError, match="TorchScript|state_dict"):
        load_model(tmp_path / "evil.pt", arch="resnet18")
    assert not marker.exists()


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "none.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_model(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk" * 100)
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        load_model(tmp_path / "junk.pt")
    net = build_torchvision_model("resnet18", num_outputs=2)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ModelError, match="--arch"):
        load_model(tmp_path / "sd.pt")
    with pytest.raises(ModelError, match="does not fit|no head weights"):
        load_model(tmp_path / "sd.pt", arch="resnet50")
    with pytest.raises(ConfigError, match="unknown architecture"):
        load_model(tmp_path / "sd.pt", arch="resnet9000")
    multi = build_torchvision_model("resnet18", num_outputs=2)
    multi.fc = torch.nn.Linear(512, 7)
    torch.save(multi.state_dict(), tmp_path / "seven.pt")
    with pytest.raises(ModelError, match="7 outputs"):
        load_model(tmp_path / "seven.pt", arch="resnet18")


def _scores_csv(tmp_path, rows):
    p = tmp_path / "scores.csv"
    pd.DataFrame(rows, columns=["image_id", "score"]).to_csv(p, index=False)
    return p


@pytest.mark.parametrize("rows, match", [
    ([("a", 0.2), ("a", 0.3)], "duplicate image id"),
    ([("a", float("nan"))], "finite probabilities"),
    ([("a", float("inf"))], "finite probabilities"),
    ([("a", 1.2)], "finite probabilities"),
    ([("a", "high")], "finite probabilities"),
])
def test_scores_csv_bad_input(tmp_path, rows, match):
    with pytest.raises(DataError, match=match):
        PrecomputedScores.from_csv(_scores_csv(tmp_path, rows))


def test_scores_lookup_ids(tmp_path):
    s = PrecomputedScores.from_csv(_scores_csv(tmp_path, [("a", 0.1), ("b", 0.9)]))
    assert s.lookup(["b", "a"]).tolist() == [0.9, 0.1]
    with pytest.raises(DataError, match="no score for 1 image"):
        s.lookup(["a", "b", "c"])
    with pytest.raises(DataError, match="not in the dataset"):
        s.lookup(["a"])


def test_score_dataset_flags_unreadable_images(phantom_dataset, tmp_path):
    ds = phantom_dataset.head(6)
    broken = ds.table.copy()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    broken.loc[2, "image_path"] = str(bad)
    from skinaudit.data import AuditDataset

    ds2 = AuditDataset(broken)
    out = score_dataset(CallableModel(lambda imgs: [0.5] * len(imgs)), ds2, batch_size=4)
    assert out["status"].tolist().count("ok") == 5
    assert "corrupt" in out["status"].iloc[2] and np.isnan(out["score"].iloc[2])
    from skinaudit.errors import ImageError

    with pytest.raises(ImageError, match="broken.png"):
        score_dataset(CallableModel(lambda imgs: [0.5] * len(imgs)), ds2, strict=True)


def test_paper_head_on_a_family_that_already_has_dropout():
    net = build_torchvision_model("efficientnet_b0", num_outputs=2, paper_head=True, dropout=0.4)
    assert [k for k in net.state_dict() if k.startswith("classifier")] == ["classifier.1.weight", "classifier.1.bias"]
    assert isinstance(net.classifier[0], torch.nn.Dropout) and net.classifier[0].p == 0.4
