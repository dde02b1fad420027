"""`skinaudit run` end to end, the paper's Table 3 known answer, and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skinaudit.cli import app
from skinaudit.metrics import binary_metrics, metrics_from_counts

runner = CliRunner()


def test_table3_known_answer():
    # The paper's Table 3 confusion matrix -> its published metrics, to 4 decimals.
    m = metrics_from_counts(tp=253, fn=35, tn=955, fp=250)
    assert round(m["recall"], 4) == 0.8785
    assert round(m["precision"], 4) == 0.5030
    assert round(m["f1"], 4) == 0.6397
    assert round(m["accuracy"], 4) == 0.8091
    # The paper prints specificity 0.7927, but its own counts give 955 / 1205 = 0.79253: the
    # published value is inconsistent with Table 3's confusion matrix; we assert the arithmetic.
    assert round(m["specificity"], 4) == 0.7925
    assert m["specificity"] == 955 / 1205
    # The same counts through scores and a threshold (score >= t is malignant).
    y = np.r_[np.ones(288), np.zeros(1205)].astype(int)
    s = np.r_[np.full(253, 0.9), np.full(35, 0.1), np.full(955, 0.2), np.full(250, 0.7)]
    b = binary_metrics(y, s, threshold=0.46)
    assert (b["tp"], b["fn"], b["tn"], b["fp"], b["n"]) == (253, 35, 955, 250, 1493)
    assert b["threshold"] == 0.46
    assert binary_metrics(y, np.where(s == 0.9, 0.46, s), threshold=0.46)["tp"] == 253  # >= is positive


def test_undefined_metrics_are_nan():
    m = binary_metrics(np.zeros(4, int), np.array([0.1, 0.2, 0.7, 0.9]), threshold=0.5)
    assert np.isnan(m["auc"]) and np.isnan(m["recall"]) and m["fp"] == 2


@pytest.mark.realdata
def test_run_with_scores_on_isic_test_set(shared_data, tmp_path):
    root = shared_data("isic2018-task3-test-224")
    gt = pd.read_csv(root / "ISIC2018_Task3_Test_GroundTruth.csv")
    y = (gt[["MEL", "BCC", "AKIEC"]].sum(axis=1) > 0).astype(int).to_numpy()
    rng = np.random.default_rng(0)
    score = np.clip(0.35 * y + rng.uniform(0, 0.65, len(y)), 0, 1)
    pd.DataFrame({"image_id": gt["image"], "score": score}).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--scores", str(tmp_path / "s.csv"), "--data", "isic",
                              "--images", str(root / "images"),
                              "--labels", str(root / "ISIC2018_Task3_Test_GroundTruth.csv"),
                              "--threshold", "0.46", "--out", str(out),
                              # the whole test set through the CLI; the sensitivity table and the
                              # report are covered on 200 of these images by tests/test_golden.py
                              "--sensitivity-sample", "0", "--no-pdf"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns[:4]) == ["image_id", "label", "score", "prediction"]
    assert len(pred) == 1512 and pred["label"].sum() == 307
    assert (pred["prediction"] == (pred["score"] >= 0.46)).all()
    metrics = json.loads((out / "metrics.json").read_text())
    o = metrics["overall"]
    expected = binary_metrics(y, score, threshold=0.46)
    for key in ("n", "auc", "recall", "precision", "f1", "accuracy", "specificity", "tp", "fn", "tn", "fp",
                "threshold"):
        assert o[key] == pytest.approx(expected[key]), key
    from sklearn.metrics import f1_score, recall_score, roc_auc_score

    assert o["auc"] == pytest.approx(roc_auc_score(y, score))
    assert o["recall"] == pytest.approx(recall_score(y, score >= 0.46))
    assert o["f1"] == pytest.approx(f1_score(y, score >= 0.46))


def test_run_with_torchscript_on_phantoms(phantom_dataset, tmp_path):
    torch = pytest.importorskip("torch")
    import warnings

    from skinaudit.models import build_torchvision_model

    torch.manual_seed(0)
    net = build_torchvision_model("resnet18", num_outputs=1).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(net), tmp_path / "m.pt")
    manifest = phantom_dataset.source["manifest"]
    res = runner.invoke(app, ["run", "--model", str(tmp_path / "m.pt"), "--data", "manifest", "--manifest",
                              manifest, "--image-size", "64", "--limit", "10", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "o" / "predictions.csv")
    assert len(pred) == 10 and pred["score"].between(0, 1).all()


@pytest.mark.parametrize("args, message", [
    (["run", "--data", "isic", "--out", "o", "--scores", "s.csv"], "--data isic needs --images DIR"),
    (["run", "--data", "manifest", "--manifest", "nope.csv", "--out", "o", "--scores", "s.csv"],
     "nope.csv: manifest file not found"),
    (["run", "--data", "manifest", "--manifest", "m.csv", "--out", "o"], "exactly one of --model"),
    (["run", "--data", "manifest", "--manifest", "m.csv", "--out", "o", "--scores", "s.csv",
      "--threshold", "1.7"], "'threshold' parameter must be in [0, 1]; got 1.7"),
])
def test_cli_errors_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_console_script_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "skinaudit.cli", "run", "--data", "manifest", "--manifest",
                           str(tmp_path / "missing.csv"), "--scores", "x.csv", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("skinaudit: error:") and "missing.csv" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_failed_run_leaves_previous_outputs(phantom_dataset, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.json").write_text('{"previous": true}')
    ids = list(phantom_dataset.ids)
    pd.DataFrame({"image_id": ids, "score": [0.5] * (len(ids) - 1) + [float("nan")]}).to_csv(
        tmp_path / "s.csv", index=False)
    res = runner.invoke(app, ["run", "--scores", str(tmp_path / "s.csv"), "--data", "manifest", "--manifest",
                              phantom_dataset.source["manifest"], "--out", str(out), "--force"])
    assert res.exit_code == 2 and "finite probabilities" in res.output
    assert json.loads((out / "metrics.json").read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".o.partial")) == []


def test_demo_offline(tmp_path):
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--n", "40"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "demo"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 20
    for name in ("report.html", "report.pdf", "audit.json", "predictions.csv", "groups.csv"):
        assert (out / name).stat().st_size > 0, name
    assert {"groups", "fairness", "recalibration", "explanations", "localisation", "failure_modes"} <= set(metrics)
    assert metrics["explanations"].get("available", True)  # the demo model is an eager CNN: CAMs exist
    assert list(out.glob("figures/triptych_*.png"))


def test_inspect_command_on_phantoms(phantom_dataset, tmp_path):
    res = runner.invoke(app, ["inspect", "--data", "manifest", "--manifest", phantom_dataset.source["manifest"],
                              "--limit", "8", "--jobs", "1", "--out", str(tmp_path / "i")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "i" / "inspect.csv")
    for col in ("image_id", "ita", "group", "skin_pixels", "flags", "hair", "ruler", "ink", "dark_corner",
                "gel_bubble", "gel_border"):
        assert col in table.columns, col
    truth = pd.read_csv(phantom_dataset.source["manifest"]).head(8)
    err = (table["ita"] - truth["ita_true"]).abs()
    assert err[truth["cast"] == "none"].median() < 3  # known skin colour recovered
    sens = pd.read_csv(tmp_path / "i" / "inspect_sensitivity.csv")
    assert "border frame (naive baseline)" in set(sens["variant"])
    assert sens.loc[0, "variant"] == "given mask, cast reference"  # what inspect.csv reports comes first
    cast = pd.read_csv(tmp_path / "i" / "inspect_cast.csv")  # 8 images: too few to estimate a cast
    assert cast.to_dict(orient="records")[0]["estimated"] == False  # noqa: E712
    assert (table["b_offset"] == 0).all() and (table["cast_group"] == "all").all()


def test_inspect_cast_options(phantom_dataset, tmp_path):
    args = ["inspect", "--data", "manifest", "--manifest", phantom_dataset.source["manifest"], "--limit", "24",
            "--jobs", "1", "--no-sensitivity"]
    bad = runner.invoke(app, [*args, "--cast-group", "site", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "cast group column 'site'" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()
    res = runner.invoke(app, [*args, "--cast-group", "cast", "--reference-b", "30", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "c" / "inspect.csv")
    truth = pd.read_csv(phantom_dataset.source["manifest"]).head(24)
    assert (table["cast_group"] == truth["cast"]).all()
    # with an absurd reference every estimated group is lifted; b* differences inside a group stay
    lifted = table[table["b_offset"] > 0]
    assert len(lifted) and (lifted["b_corrected"] - lifted["b"] - lifted["b_offset"]).abs().max() < 1e-9
    none = runner.invoke(app, [*args, "--ita-correction", "none", "--out", str(tmp_path / "n")])
    assert none.exit_code == 0 and "b_offset" not in pd.read_csv(tmp_path / "n" / "inspect.csv").columns
    wrong = runner.invoke(app, [*args, "--ita-correction", "grey", "--out", str(tmp_path / "w")])
    assert wrong.exit_code == 2 and "ita_correction" in wrong.output
    full = runner.invoke(app, [*args, "--skin-margin", "full", "--out", str(tmp_path / "f")])
    assert full.exit_code == 0, full.output
    assert pd.read_csv(tmp_path / "f" / "inspect.csv")["method"].str.contains("/full-margin").all()
    odd = runner.invoke(app, [*args, "--skin-margin", "wide", "--out", str(tmp_path / "o")])
    assert odd.exit_code == 2 and "skin_margin" in odd.output and "Traceback" not in odd.output


def test_inspect_suggests_an_acquisition_column(phantom_dataset, tmp_path):
    src = Path(phantom_dataset.source["manifest"])
    table = pd.read_csv(src).head(10)
    table["site"] = ["a", "b"] * 5
    manifest = src.parent / "with_site.csv"  # beside the images: manifest paths are relative to it
    table.to_csv(manifest, index=False)
    args = ["inspect", "--data", "manifest", "--manifest", str(manifest), "--jobs", "1", "--no-sensitivity"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert res.exit_code == 0 and "pass --cast-group site" in res.output
    res = runner.invoke(app, [*args, "--cast-group", "site", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0 and "pass --cast-group" not in res.output


def test_explain_command_with_state_dict(phantom_dataset, tmp_path):
    torch = pytest.importorskip("torch")
    from skinaudit.models import build_torchvision_model

    torch.manual_seed(0)
    torch.save(build_torchvision_model("resnet18", num_outputs=2, paper_head=True).state_dict(), tmp_path / "m.pt")
    res = runner.invoke(app, ["explain", "--model", str(tmp_path / "m.pt"), "--arch", "resnet18", "--image-size",
                              "64", "--data", "manifest", "--manifest", phantom_dataset.source["manifest"],
                              "--limit", "12", "--cam-sample", "4", "--jobs", "1", "--threshold", "0.5",
                              "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "e"
    # a ResNet18 at 64 px has a 2x2 map: localisation is withheld, with the reason, not scored
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["explanations"]["cam_grid"] == "2x2 at 64 px"
    assert metrics["localisation"]["available"] is False and "2x2 at 64 px" in metrics["localisation"]["reason"]
    assert not (out / "localisation.csv").exists()
    pred = pd.read_csv(out / "predictions.csv")
    n_fn = int(((pred["label"] == 1) & (pred["prediction"] == 0)).sum())
    if n_fn:
        modes = pd.read_csv(out / "failure_modes.csv")
        assert len(modes) == n_fn
        assert set(modes["mode"]) <= {"artifact_distraction", "poor_localisation", "low_contrast",
                                      "atypical_presentation"}
        assert all((out / p).is_file() for p in modes["cam_png"])
    assert list(out.glob("figures/triptych_*.png"))


def test_explain_refuses_torchscript_clearly(phantom_dataset, tmp_path):
    torch = pytest.importorskip("torch")
    import warnings

    from skinaudit.models import build_torchvision_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(build_torchvision_model("resnet18", num_outputs=1).eval()), tmp_path / "s.pt")
    res = runner.invoke(app, ["explain", "--model", str(tmp_path / "s.pt"), "--image-size", "64", "--data",
                              "manifest", "--manifest", phantom_dataset.source["manifest"], "--limit", "4",
                              "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "TorchScript" in res.output and "--arch" in res.output


def test_report_figures_with_a_relative_out_folder(phantom_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ids = list(phantom_dataset.ids)
    rng = np.random.default_rng(1)
    pd.DataFrame({"image_id": ids, "score": rng.uniform(0, 1, len(ids))}).to_csv("s.csv", index=False)
    res = runner.invoke(app, ["run", "--scores", "s.csv", "--data", "manifest", "--manifest",
                              phantom_dataset.source["manifest"], "--out", "rel-out", "--n-boot", "200",
                              "--sensitivity-sample", "0", "--jobs", "1", "--no-pdf"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rel-out" / "report.html").read_text()
    assert "not found" not in html
    assert html.count("data:image/png;base64") >= 3


# -- first use (#16): --version, help at 80 columns, model_info.json, progress --------------

def test_version_option_prints_the_version():
    from skinaudit._version import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == __version__


def test_help_is_readable_at_80_columns():
    res = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert max(map(len, lines)) <= 80
    for flag in ("--allow-outside-root", "--sensitivity-sample", "--explain / --no-explain", "-q, --quiet"):
        assert any(line.lstrip().startswith(flag) for line in lines), flag
    assert "<bool>" not in res.output and "--strict  " in res.output


def test_bad_choice_has_no_value_error_prefix(tmp_path):
    res = runner.invoke(app, ["inspect", "--data", "nope", "--manifest", "m.csv", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "'nope' is not one of" in res.output
    assert "Value error" not in res.output


@pytest.fixture()
def exported_run(tmp_path):
    """A tiny state dict and the model_info.json that reference_model's export writes beside it."""
    torch = pytest.importorskip("torch")
    from skinaudit.models import build_torchvision_model

    torch.manual_seed(0)
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save(build_torchvision_model("resnet18", num_outputs=2, paper_head=True).state_dict(),
               folder / "model_state.pt")
    info = {"arch": "resnet18", "image_size": 64, "thresholds": {"model.pt": 0.31, "model_state.pt": 0.24},
            "threshold_details": {"model_state.pt": {"threshold": 0.24, "validation": "fold 0 validation scores"}}}
    (folder / "model_info.json").write_text(json.dumps(info))
    return folder


def _audit_model(model, manifest, out, *extra):
    return runner.invoke(app, ["run", "--model", str(model), "--data", "manifest", "--manifest", manifest,
                               "--limit", "12", "--jobs", "1", "--n-boot", "200", "--sensitivity-sample", "0",
                               "--no-explain", "--no-report", "--no-cache", "--out", str(out), *extra])


def test_model_info_beside_the_model_sets_threshold_size_and_arch(exported_run, phantom_dataset, tmp_path):
    res = _audit_model(exported_run / "model_state.pt", phantom_dataset.source["manifest"], tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert ("using model_info.json beside the model: image size 64, threshold 0.24 (validation), arch resnet18"
            in res.output)
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["threshold"] == 0.24
    assert "(threshold 0.24)" in res.output
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["model"]["preprocess"]["size"] == 64 and audit["model"]["arch"] == "resnet18"


def test_explicit_options_win_over_model_info(exported_run, phantom_dataset, tmp_path):
    res = _audit_model(exported_run / "model_state.pt", phantom_dataset.source["manifest"], tmp_path / "o",
                       "--threshold", "0.6", "--image-size", "72")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["threshold"] == 0.6
    assert "using model_info.json beside the model: arch resnet18" in res.output
    assert "--threshold 0.6 given; model_info.json says 0.24" in res.output
    assert "--image-size 72 given; model_info.json says 64" in res.output


def test_without_model_info_the_builtin_defaults_apply(tmp_path):
    from skinaudit.cli import resolve_model_settings

    (tmp_path / "m.pt").write_bytes(b"x")
    s = resolve_model_settings(tmp_path / "m.pt")
    assert (s.threshold, s.image_size, s.arch, s.from_info) == (0.5, 299, None, ())


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"image_size": "96"}', "'image_size' must be an integer in [16, 4096]; got '96'"),
    ('{"image_size": 4}', "'image_size' must be an integer in [16, 4096]; got 4"),
    ('{"arch": 5}', "'arch' must be a torchvision architecture name"),
    ('{"thresholds": {"m.pt": 1.5}}', "'thresholds.m.pt' must be a number in [0, 1]; got 1.5"),
    ('{"thresholds": [0.3]}', "'thresholds' must be an object"),
])
def test_malformed_model_info_is_a_one_line_error(tmp_path, content, message):
    (tmp_path / "m.pt").write_bytes(b"x")
    (tmp_path / "model_info.json").write_text(content)
    res = runner.invoke(app, ["run", "--model", str(tmp_path / "m.pt"), "--data", "manifest", "--manifest",
                              str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and message in res.output, res.output
    assert res.output.strip().count("\n") == 0 and "model_info.json" in res.output


def test_arch_for_a_torchscript_file_is_said_to_be_ignored(phantom_dataset, tmp_path):
    torch = pytest.importorskip("torch")
    import warnings

    from skinaudit.models import build_torchvision_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(build_torchvision_model("resnet18", num_outputs=1).eval()), tmp_path / "s.pt")
    res = _audit_model(tmp_path / "s.pt", phantom_dataset.source["manifest"], tmp_path / "o", "--arch", "resnet50",
                       "--image-size", "64")
    assert res.exit_code == 0, res.output
    assert "--arch resnet50 is ignored" in res.output and "Grad-CAM++ explanations are skipped for TorchScript" \
        in res.output


def _run_cli(args, *, tty: bool):
    """Run the console entry point with stderr on a pseudo-terminal (100 columns) or a pipe;
    return (exit code, stderr text)."""
    code = "import sys; from skinaudit.cli import main; sys.argv = ['skinaudit', *sys.argv[1:]]; main()"
    cmd = [sys.executable, "-c", code, *args]
    if not tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stderr
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def twenty_phantoms(tmp_path_factory):
    from skinaudit.phantoms import generate_phantoms

    return generate_phantoms(tmp_path_factory.mktemp("ph20"), n=20, seed=3).source["manifest"]


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_inspect_shows_progress_bars_on_a_terminal(twenty_phantoms, tmp_path):
    args = ["inspect", "--data", "manifest", "--manifest", twenty_phantoms, "--jobs", "2"]
    code, err = _run_cli([*args, "--out", str(tmp_path / "tty")], tty=True)
    assert code == 0, err
    assert "skin tone:" in err and "/20 [" in err and "it/s" in err, err   # tqdm: "skin tone:  45%|### | 9/20 [.."
    assert "ITA variants:" not in err  # one pass: the estimator variants are computed with the rows
    code, err = _run_cli([*args, "--out", str(tmp_path / "quiet"), "--quiet"], tty=True)
    assert code == 0 and "/20 [" not in err and "%|" not in err, err


def test_no_progress_output_when_stderr_is_not_a_terminal(twenty_phantoms, tmp_path):
    code, err = _run_cli(["inspect", "--data", "manifest", "--manifest", twenty_phantoms, "--out",
                          str(tmp_path / "o")], tty=False)
    assert code == 0
    assert err == "" and "\r" not in err
    assert (tmp_path / "o" / "inspect.csv").is_file()
