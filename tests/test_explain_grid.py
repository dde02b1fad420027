"""Explanations state the CAM's native grid, withhold localisation on a grid too coarse to
support it, and label which map each explanation of a false negative comes from (issue 16)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import skinaudit as sa  # noqa: E402
from skinaudit.explain import MIN_CAM_GRID, cam_grid  # noqa: E402
from skinaudit.models import Preprocess, TorchModel, build_torchvision_model  # noqa: E402

CONFIG = sa.AuditConfig(n_boot=200, sensitivity_sample=0, n_jobs=1, cam_sample=4, cases_per_kind=1,
                        threshold=0.5)


def _model(size):
    torch.manual_seed(0)
    return TorchModel(build_torchvision_model("resnet18", num_outputs=1).eval(), preprocess=Preprocess(size=size))


@pytest.mark.parametrize("size, grid", [(96, (3, 3)), (224, (7, 7)), (299, (10, 10))])
def test_cam_grid_is_the_target_layers_map(size, grid):
    assert cam_grid(_model(size)) == grid


def test_a_coarse_grid_withholds_localisation_and_its_failure_rules(phantom_dataset):
    ds = phantom_dataset.head(12)
    # scores forced low: every malignant phantom is a false negative
    model = _model(96)
    model.predict_proba = lambda images: [0.1] * len(images)
    result = sa.run_audit(model, ds, CONFIG)
    exp = result.section("explanations")
    assert exp["cam_grid"] == "3x3 at 96 px" and exp["min_cam_grid"] == f"{MIN_CAM_GRID}x{MIN_CAM_GRID}"
    loc = result.section("localisation")
    assert not loc.available and "3x3 at 96 px" in loc.reason and "withheld" in loc.reason
    assert "localisation" not in result.tables and "localisation_by_group" not in result.tables
    modes = result.tables["failure_modes"]
    assert len(modes) == int(ds.labels.sum())
    assert modes["cam_rules"].str.startswith("withheld: CAM grid 3x3 at 96 px").all()
    assert not modes["mode"].isin(["poor_localisation", "artifact_distraction"]).any()


def test_a_false_negative_names_both_maps(phantom_dataset):
    ds = phantom_dataset.head(12)
    model = _model(224)
    model.predict_proba = lambda images: [0.1] * len(images)
    result = sa.run_audit(model, ds, dataclasses.replace(CONFIG, cam_sample=12))
    assert result.section("explanations")["cam_grid"] == "7x7 at 224 px" and result.section("localisation").available
    modes = result.tables["failure_modes"].set_index("image_id")
    loc = result.tables["localisation"].set_index("image_id")
    assert (modes["rules_map"] == "predicted class (benign for a false negative)").all()
    assert (modes["cam_rules"] == "applied (CAM grid 7x7 at 224 px)").all()
    pd.testing.assert_series_equal(modes["malignant_map_relevance_mass"],
                                   loc.loc[modes.index, "relevance_mass"], check_names=False)
    assert any("malignant_map_" in n for n in result.section("failure_modes")["notes"])
