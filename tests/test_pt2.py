"""torch.export archives (.pt2): scored like the module they came from, loaded without running
code from the file (torch.export.load itself would unpickle), never explained."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import skinaudit as sa  # noqa: E402
from skinaudit.errors import ModelError, UnsafeCheckpointError  # noqa: E402
from skinaudit.models import Preprocess, TorchModel, build_torchvision_model, load_model  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = build_torchvision_model("resnet18", num_outputs=1).eval()
    program = torch.export.export(net, (torch.zeros(2, 3, 64, 64),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    torch.export.save(program, str(path))
    return net, path


def _rewrite(src: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = change(item.filename, zin.read(item.filename))
            zout.writestr(item, data)
    return dst


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pt2_scores_like_its_module(exported):
    net, path = exported
    images = [np.random.default_rng(k).integers(0, 255, (80, 80, 3), dtype=np.uint8) for k in range(5)]
    model = load_model(path, image_size=64)
    assert model.is_exported and not model.is_scripted
    np.testing.assert_allclose(model.predict_proba(images),
                               TorchModel(net, preprocess=Preprocess(size=64)).predict_proba(images), atol=1e-6)


def test_a_pickled_weight_is_refused_before_loading(exported, tmp_path):
    _, path = exported

    def mark_pickled(name, data):
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"]))
            config["config"][first]["use_pickle"] = True
            return json.dumps(config).encode()
        return data
    bad = _rewrite(path, tmp_path / "bad.pt2", mark_pickled)
    with pytest.raises(UnsafeCheckpointError, match="pickled object"):
        load_model(bad, image_size=64)


def test_code_in_the_sample_inputs_never_runs(exported, tmp_path):
    # torch.export.load reads the sample inputs with weights_only=True and falls back to
    # weights_only=False: a pickle payload there would run. skinaudit forbids the fallback.
    _, path = exported
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"x": _Payload(str(marker))}, buf, pickle_protocol=2)

    def poison(name, data):
        return buf.getvalue() if name.endswith("data/sample_inputs/model.pt") else data
    bad = _rewrite(path, tmp_path / "poisoned.pt2", poison)
    with pytest.raises(ModelError):
        load_model(bad, image_size=64)
    assert not marker.exists()


def test_a_pt2_is_audited_and_says_why_it_is_not_explained(exported, phantom_dataset):
    _, path = exported
    ds = phantom_dataset.head(8)
    result = sa.run_audit(load_model(path, image_size=64), ds,
                          sa.AuditConfig(n_boot=200, sensitivity_sample=0, n_jobs=1))
    assert result.overall["n"] == 8
    exp = result.section("explanations")
    assert not exp.available and "torch.export" in exp.reason and "--arch" in exp.reason
    assert result.model["sha256"] and pd.notna(result.predictions["score"]).all()
