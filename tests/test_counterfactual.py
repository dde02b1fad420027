"""Counterfactual skin tone (#17): known answers of the recolouring, and planted models."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skinaudit import AuditConfig
from skinaudit.counterfactual import DEFAULT_LEVELS, recolour_skin, seam_energy, target_lab
from skinaudit.counterfactual_stats import counterfactual_test, stratified_sample
from skinaudit.errors import ConfigError
from skinaudit.lesion import detect_artifacts
from skinaudit.models import CallableModel, PrecomputedScores
from skinaudit.phantoms import PhantomSpec, make_phantom
from skinaudit.skintone import ItaParams, estimate_ita
from skinaudit.skintone.ita import ita_degrees

NONE = ItaParams(ita_correction="none")
# real isic-uda1 images with human masks; 0000000, 0000038, 0000046: strong blue casts (skin b* -22 to -36),
# 0000052: overexposed skin (L* 95) with a thin ring of skin (the adaptive band)
REAL = ("ISIC_0000001", "ISIC_0000003", "ISIC_0000006", "ISIC_0000008", "ISIC_0000009", "ISIC_0000012",
        "ISIC_0000000", "ISIC_0000038", "ISIC_0000046", "ISIC_0000052")


def _measure(img, mask, artifacts):
    # the original image's artifacts: the detectors would take recoloured dark skin for a vignette
    return estimate_ita(img, lesion_mask=mask, artifact_masks=artifacts, params=NONE).ita


@pytest.mark.parametrize("ita", DEFAULT_LEVELS)
def test_target_colour_has_the_target_ita(ita):
    L, b = target_lab(65.0, 16.0, ita)
    assert ita_degrees(L, b) == pytest.approx(ita, abs=1e-9)
    assert np.hypot(L - 50, b) == pytest.approx(25.0)


@pytest.mark.parametrize("kwargs, match", [({"levels": (95.0,)}, "target ITA"), ({"levels": ()}, "at least one"),
                                           ({"band": 0.7}, "band"), ({"refine": -1}, "refine")])
def test_bad_options_are_refused(kwargs, match):
    ph = make_phantom(PhantomSpec(size=96, seed=1))
    with pytest.raises(ConfigError, match=match):
        recolour_skin(ph.image, ph.mask, **kwargs)


def test_phantoms_land_on_the_target_and_keep_the_lesion():
    errors = []
    for i, (L, b) in enumerate([(65, 16), (72, 10), (55, 20), (45, 18), (78, 8)]):
        ph = make_phantom(PhantomSpec(skin_L=L, skin_b=b, seed=i, size=160, hair=3 if i == 1 else 0))
        rec = recolour_skin(ph.image, ph.mask)
        art = detect_artifacts(ph.image, lesion_mask=ph.mask)
        for ita, img in zip(rec.levels, rec.images):
            errors.append(_measure(img, ph.mask, art) - ita)
            assert np.array_equal(img[ph.mask], ph.image[ph.mask])
            assert np.array_equal(img[rec.weight == 0], ph.image[rec.weight == 0])  # margin, artifacts
    assert np.max(np.abs(errors)) < 2.0, errors


@pytest.fixture(scope="module")
def uda1(shared_data):
    root = shared_data("isic-uda1")
    from skinaudit.data import load_isic_archive

    return load_isic_archive(root / "labels.csv", root / "images", masks=root / "masks")


def _small(ds, iid, side=256):
    from skinaudit.counterfactual_stats import _shrink
    from skinaudit.imageio import read_image, read_mask

    row = ds.table.set_index("image_id").loc[iid]
    img = read_image(row["image_path"])
    return _shrink(img, read_mask(row["mask_path"], shape=img.shape[:2]), side)


def test_real_images_land_on_the_target_with_a_seam_within_the_originals_range(uda1):
    errors, seams, reference = [], [], []
    for iid in REAL:
        img, mask = _small(uda1, iid)
        rec = recolour_skin(img, mask)
        art = detect_artifacts(img, lesion_mask=mask)
        # the originals' range: the lesion's own edge (with a human mask the kept zone is the lesion)
        assert np.array_equal(rec.zone, mask)
        reference.append(seam_energy(img, mask))
        for ita, out in zip(rec.levels, rec.images):
            errors.append(_measure(out, mask, art) - ita)
            seams.append(seam_energy(out, rec.zone))
            assert np.array_equal(out[mask], img[mask])
    assert np.max(np.abs(errors)) < 2.0, errors
    seams = np.reshape(seams, (len(REAL), -1))
    print("seam by level (median, max):", np.median(seams, 0), seams.max(0), "originals' max", max(reference))
    assert np.all(np.median(seams, axis=0) <= max(reference))  # every level's typical seam
    # measured 2026-12-06 (skin recoloured up to the mask, 3% blend): on the first 60 isic-uda1 images with
    # masks 100% of the versions at ITA 60-10 and 98% at -20 are within the originals' maximum (51.7)
    assert np.mean(seams <= max(reference)) >= 0.9


def _periphery_reader(images):
    """Planted: reads only the skin far from the centre (darker skin -> higher score)."""
    out = []
    for im in images:
        a = np.asarray(Image.fromarray(im).resize((128, 128), Image.BILINEAR), dtype=float) / 255
        yy, xx = np.mgrid[:128, :128]
        outer = np.hypot(yy - 63.5, xx - 63.5) > 50
        out.append(1.0 - a[outer].mean())
    return np.array(out)


def _centre_reader(images):
    """Planted: reads only the lesion's centre (a disc of 6% of the side)."""
    out = []
    for im in images:
        a = np.asarray(Image.fromarray(im).resize((128, 128), Image.BILINEAR), dtype=float) / 255
        out.append(1.0 - a[56:72, 56:72].mean())
    return np.array(out)


@pytest.fixture(scope="module")
def sample30(uda1):
    ids = [i for i, m in zip(uda1.ids, uda1.mask_paths) if m][:30]
    return uda1.subset(ids)


def test_planted_skin_reader_is_sensitive_and_centre_reader_is_not(sample30):
    skin = counterfactual_test(CallableModel(_periphery_reader), sample30, n=30, long_side=128, n_boot=200)
    centre = counterfactual_test(CallableModel(_centre_reader), sample30, n=30, long_side=128, n_boot=200)
    print("skin", skin["verdict"], skin["effect"], skin["p_adjusted"], "centre", centre["verdict"], centre["effect"],
          centre["p_adjusted"], "skipped", skin["skipped"])
    assert skin["verdict"] == "sensitive" and skin["effect"] > 0.02
    assert centre["verdict"] == "not_detected" and abs(centre["effect"]) <= 0.02
    assert [lv["target_ita"] for lv in skin["levels"]] == list(DEFAULT_LEVELS)
    assert set(skin["table"]["target_ita"].dropna()) == set(DEFAULT_LEVELS)
    assert len(skin["table"]) == skin["n"] * (len(DEFAULT_LEVELS) + 1)


def test_too_few_images_is_insufficient_and_scores_csv_is_refused(sample30):
    res = counterfactual_test(CallableModel(_centre_reader), sample30, n=4, long_side=96, n_boot=200)
    assert res["verdict"] == "insufficient" and res["n"] <= 4
    scores = PrecomputedScores(__import__("pandas").Series(0.5, index=list(sample30.ids)))
    with pytest.raises(ConfigError, match="scores CSV cannot"):
        counterfactual_test(scores, sample30, n=10)


def test_stratified_sample_keeps_class_shares_and_seed():
    y = np.array([0] * 70 + [1] * 30)
    s = stratified_sample(y, 20, random_state=3)
    assert len(s) == 20 and y[s].sum() == 6
    assert np.array_equal(s, stratified_sample(y, 20, random_state=3))
    assert not np.array_equal(s, stratified_sample(y, 20, random_state=4))


def test_config_field_is_validated_and_off_by_default():
    assert AuditConfig().counterfactual == 0
    with pytest.raises(ConfigError, match="counterfactual"):
        AuditConfig(counterfactual=-1)


def test_audit_stage_writes_the_section_table_and_figure_and_reads_back(sample30, tmp_path, monkeypatch):
    import skinaudit as sa
    from skinaudit.result import AuditResult

    ds = sample30.head(14)
    config = AuditConfig(counterfactual=12, n_boot=200, explain="off", sensitivity_sample=0)
    result = sa.run_audit(CallableModel(_periphery_reader), ds, config, stages=("skintone",))
    section = result.sections["counterfactual"]
    assert section["verdict"] in {"sensitive", "not_detected", "insufficient"}
    assert [lv["target_ita"] for lv in section["levels"]] == list(DEFAULT_LEVELS)
    assert set(result.tables["counterfactual"].columns) >= {"image_id", "target_ita", "score", "prediction"}
    assert result.figures["counterfactual_dose_response"].startswith(b"\x89PNG")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the report's date, for the re-render below
    sa.write_audit(result, tmp_path / "out", report=True, pdf=False)
    assert (tmp_path / "out" / "counterfactual.csv").is_file()
    back = AuditResult.read(tmp_path / "out")
    assert back.sections["counterfactual"]["verdict"] == section["verdict"]
    assert back.config.counterfactual == 12
    # the report's curated view: the summary in words leads, the effect has its direction, one row per level
    html = (tmp_path / "out" / "report.html").read_text()
    chapter = html[html.index('<section id="counterfactual">'):]
    chapter = chapter[:chapter.index("</section>")]
    assert chapter.index(section["summary"].split(":")[0]) < chapter.index("Verdict")
    sign = "higher at ITA -20" if section["effect"] > 0 else "higher at ITA 60"
    assert sign in chapter and "mean score at ITA -20 minus at ITA 60" in chapter
    assert chapter.count(">recoloured</td>") == len(DEFAULT_LEVELS) and "as photographed" in chapter
    assert "mcnemar_table" not in chapter and "Other values" not in chapter
    from skinaudit.report import write_report

    write_report(back, tmp_path / "again", pdf=False)
    assert (tmp_path / "again" / "report.html").read_bytes() == (tmp_path / "out" / "report.html").read_bytes()


def test_audit_refuses_a_scores_csv_before_any_work(sample30):
    import pandas as pd

    import skinaudit as sa

    scores = PrecomputedScores(pd.Series(0.5, index=list(sample30.ids)))
    with pytest.raises(ConfigError, match="scores CSV cannot"):
        sa.run_audit(scores, sample30, AuditConfig(counterfactual=10))


def _reader_module(kind: str):
    """A planted model at 128 px: one logit from the mean normalised intensity of the periphery
    (``skin``: outside a central disc of radius 50 px) or of the centre (16 x 16 px)."""
    torch = pytest.importorskip("torch")

    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    if kind == "skin":
        region = (torch.hypot(yy - 63.5, xx - 63.5) > 50).float()
    else:
        region = torch.zeros(128, 128)
        region[56:72, 56:72] = 1.0

    class Reader(torch.nn.Module):
        def __init__(self, region):
            super().__init__()
            self.register_buffer("region", region)

        def forward(self, x):
            mean = (x.mean(dim=1) * self.region).sum(dim=(1, 2)) / self.region.sum()
            return (-mean).unsqueeze(1)  # darker -> higher P(malignant)

    return Reader(region).eval()


def _scripted_reader(kind: str, path):
    """:func:`_reader_module` saved as TorchScript."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated; skinaudit loads it
        torch.jit.script(_reader_module(kind)).save(str(path))
    return path


def test_planted_torchscript_models_through_load_model(sample30, tmp_path):
    from skinaudit.models import load_model

    skin = load_model(_scripted_reader("skin", tmp_path / "skin.pt"), image_size=128)
    centre = load_model(_scripted_reader("centre", tmp_path / "centre.pt"), image_size=128)
    rs = counterfactual_test(skin, sample30, n=30, long_side=128, n_boot=200)
    rc = counterfactual_test(centre, sample30, n=30, long_side=128, n_boot=200)
    print("torchscript skin", rs["verdict"], rs["effect"], rs["p_adjusted"], "centre", rc["verdict"], rc["effect"],
          rc["p_adjusted"])
    assert rs["verdict"] == "sensitive"
    assert rc["verdict"] == "not_detected"


def test_must_show_planted_torchscript_models_through_skinaudit_run(uda1, tmp_path):
    """The issue's must-show: `skinaudit run --model M.pt --image-size 128 --data manifest
    --manifest m.csv --counterfactual 40`: the skin reader is sensitive, the centre reader not."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from skinaudit.cli import app

    rows = [(i, p, int(y), m) for i, p, y, m in zip(uda1.ids, uda1.image_paths, uda1.labels, uda1.mask_paths) if m][:40]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=["image_id", "image_path", "label", "mask_path"]).to_csv(manifest, index=False)
    verdicts = {}
    for kind in ("skin", "centre"):
        model = _scripted_reader(kind, tmp_path / f"{kind}.pt")
        out = tmp_path / f"audit-{kind}"
        res = CliRunner().invoke(app, ["run", "--model", str(model), "--image-size", "128", "--data", "manifest",
                                       "--manifest", str(manifest), "--allow-outside-root", "--counterfactual", "40",
                                       "--out", str(out), "--no-pdf", "--sensitivity-sample", "0", "--n-boot", "200",
                                       "--quiet"])
        assert res.exit_code == 0, res.output
        verdicts[kind] = json.loads((out / "metrics.json").read_text())["counterfactual"]["verdict"]
        assert (out / "counterfactual.csv").is_file()
    assert verdicts == {"skin": "sensitive", "centre": "not_detected"}


def test_counterfactual_command_alone(uda1, tmp_path):
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from skinaudit.cli import app

    rows = [(i, p, int(y), m) for i, p, y, m in zip(uda1.ids, uda1.image_paths, uda1.labels, uda1.mask_paths) if m][:20]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows, columns=["image_id", "image_path", "label", "mask_path"]).to_csv(manifest, index=False)
    model = _scripted_reader("skin", tmp_path / "skin.pt")
    res = CliRunner().invoke(app, ["counterfactual", "--model", str(model), "--image-size", "128", "--data", "manifest",
                                   "--manifest", str(manifest), "--allow-outside-root", "--n", "20",
                                   "--out", str(tmp_path / "cf"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "counterfactual: sensitive: recolouring only the skin from ITA 60 to -20 raised" in res.output
    section = json.loads((tmp_path / "cf" / "metrics.json").read_text())["counterfactual"]
    assert section["verdict"] == "sensitive" and section["figures"]["three_levels"]
    assert (tmp_path / "cf" / "figures" / "counterfactual_three_levels.png").is_file()
    res = CliRunner().invoke(app, ["counterfactual", "--data", "manifest", "--manifest", str(manifest),
                                   "--allow-outside-root", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "cannot score recoloured images" in res.output


def test_run_default_is_on_for_a_model_on_a_gpu_and_off_on_the_cpu(monkeypatch):
    import torch

    from skinaudit.cli import _counterfactual_n
    from skinaudit.counterfactual_stats import GPU_DEFAULT_N

    assert _counterfactual_n(None, "cpu", "m.pt") == 0
    assert _counterfactual_n(None, "cuda", "m.pt") == GPU_DEFAULT_N == 200
    assert _counterfactual_n(None, "cuda", None) == 0  # a scores CSV cannot be re-scored
    assert _counterfactual_n(0, "cuda", "m.pt") == 0 and _counterfactual_n(40, "cpu", "m.pt") == 40
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _counterfactual_n(None, "auto", "m.pt") == GPU_DEFAULT_N
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _counterfactual_n(None, "auto", "m.pt") == 0


def test_planted_onnx_skin_reader_is_sensitive(sample30, tmp_path):
    """The test takes any adapter that can re-score: an ONNX export of the planted skin reader."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import warnings

    import torch

    from skinaudit.models import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_reader_module("skin"), torch.randn(1, 3, 128, 128), tmp_path / "skin.onnx", input_names=["input"],
                          dynamic_axes={"input": {0: "n"}}, dynamo=False)
    model = load_model(tmp_path / "skin.onnx", image_size=128)
    res = counterfactual_test(model, sample30, n=30, long_side=128, n_boot=200)
    assert res["verdict"] == "sensitive" and res["effect"] > 0.02
