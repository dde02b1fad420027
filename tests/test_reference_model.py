"""reference_model: recipe pieces, folds, TTA ensemble, threshold, export, CLI.

Real images: 16 HAM10000 images (8 malignant, 8 benign) at 32 px, through the
``shared_data`` fixture (skipped with a reason when the data is absent).
"""
from __future__ import annotations

import json
import logging
import math
import os

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from skinaudit.errors import ConfigError, DataError  # noqa: E402

from reference_model.config import CONFIGS, PAPER_TABLES, TABLE2_CONFIGS, TABLE4_CONFIGS, get_config  # noqa: E402
from reference_model.data import (ImageTensorDataset, lesion_leakage, load_images, make_folds,  # noqa: E402
                                  normalize)
from reference_model.ensemble import TTAEnsemble, tta_views  # noqa: E402
from reference_model import train as T  # noqa: E402

pytestmark = pytest.mark.torch
SIZE = 32  # small on purpose: the suite shares two CPU cores


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster than two spinning on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**kw):
    base = dict(image_size=SIZE, max_epochs=1, n_splits=2, train_folds=1, batch_size=8,
                tta=("identity", "hflip"))
    base.update(kw)
    return get_config("cpu-small", **base)


@pytest.fixture(scope="module")
def ham(shared_data):
    from skinaudit.data import load_isic

    root = shared_data("ham10000-224")
    return load_isic(root / "images", root / "HAM10000_metadata.csv")


@pytest.fixture(scope="module")
def tiny(ham):
    t = ham.table
    ids = list(t.loc[t.label == 1, "image_id"][:8]) + list(t.loc[t.label == 0, "image_id"][:8])
    sub = ham.subset(ids)
    return sub, load_images(sub.image_paths, size=SIZE)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """One end-to-end run of train_cv on the 16 real images (1 fold of 2, 1 epoch)."""
    from reference_model.pipeline import train_cv

    sub, images = tiny
    out = tmp_path_factory.mktemp("rm_run")
    log = train_cv(tiny_config(), sub, out_dir=out, images=images)
    return sub, out, log


# --------------------------------------------------------------------------- configurations
def test_every_paper_row_is_a_configuration():
    assert [c.description for c in TABLE4_CONFIGS] == [
        "baseline (single fold, t=0.5)", "+ differential LR + scheduler", "+ label smoothing + class weights",
        "+ recall-optimised threshold", "+ 3-fold CV", "+ TTA ensemble (full)"]
    assert {c.arch for c in TABLE2_CONFIGS} == {"efficientnet_b3", "densenet121", "resnet50"}
    assert set(PAPER_TABLES["table4"]) == {c.name for c in TABLE4_CONFIGS}
    base, lr, loss, thr, cv, full = TABLE4_CONFIGS
    # cumulative: each row changes only its own ingredient
    assert (base.differential_lr, base.scheduler, base.threshold_rule, base.train_folds) == (False, "none", "fixed", 1)
    assert (lr.differential_lr, lr.scheduler, lr.label_smoothing) == (True, "cosine", 0.0)
    assert (loss.label_smoothing > 0, loss.class_weights, loss.threshold_rule) == (True, True, "fixed")
    assert (thr.threshold_rule, thr.train_folds) == ("recall", 1)
    assert (cv.train_folds, cv.tta) == (3, ("identity",))
    assert full.tta == ("identity", "hflip", "vflip", "hvflip") and full.to_dict()["train_folds"] == 3
    paper = CONFIGS["paper"]
    assert (paper.arch, paper.image_size, paper.dropout, paper.batch_size, paper.patience) == ("resnet50", 299, 0.4, 32, 7)
    small = CONFIGS["cpu-small"]
    assert small.arch == "resnet18" and 128 <= small.image_size <= 160 and not small.pretrained


@pytest.mark.parametrize("kw, match", [
    ({"name": "nope"}, "unknown configuration"),
    ({"name": "cpu-small", "dropout": 1.0}, "dropout"),
    ({"name": "cpu-small", "train_folds": 4}, "train_folds"),
    ({"name": "cpu-small", "tta": ("rot90",)}, "tta"),
    ({"name": "cpu-small", "split": "random"}, "split"),
    ({"name": "cpu-small", "colour": 1}, "unknown configuration field"),
])
def test_bad_configurations_raise(kw, match):
    name = kw.pop("name")
    with pytest.raises(ConfigError, match=match):
        get_config(name, **kw)


def test_overrides_reach_the_configuration():
    c = get_config("paper", max_epochs=3, seed=7, gamma=0.9, image_size=None)
    assert (c.max_epochs, c.seed, c.gamma, c.image_size) == (3, 7, 0.9, 299)


# --------------------------------------------------------------------------- folds and leakage
def _lesion_table(n_lesions=120, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_lesions)  # 1-4 images per lesion
    lesion = np.repeat([f"L{i}" for i in range(n_lesions)], sizes)
    label = np.repeat((np.arange(n_lesions) % 4 == 0).astype(int), sizes)
    return lesion, label


def test_grouped_folds_never_split_a_lesion_and_stratified_folds_do():
    lesion, label = _lesion_table()
    grouped = lesion_leakage(lesion, make_folds(label, lesion, n_splits=3, split="grouped", random_state=1))
    plain = lesion_leakage(lesion, make_folds(label, lesion, n_splits=3, split="stratified", random_state=1))
    n_multi = int((pd.Series(lesion).value_counts() > 1).sum())
    assert grouped["n_multi_image_lesions"] == plain["n_multi_image_lesions"] == n_multi > 0
    assert grouped["n_leaking_lesions"] == 0 and grouped["leaking_image_share"] == 0.0
    # a lesion with k images stays in one of 3 random folds with probability ~3^(1-k): most leak
    assert plain["n_leaking_lesions"] > n_multi / 2
    assert plain["leaking_image_share"] == plain["n_leaking_images"] / len(lesion)


def test_folds_on_real_ham10000_metadata(shared_data):
    from skinaudit.data import read_table

    meta = read_table(shared_data("ham10000-224") / "HAM10000_metadata.csv", "metadata")
    y = meta["dx"].str.lower().isin(["mel", "bcc", "akiec"]).astype(int).to_numpy()
    folds = make_folds(y, meta["lesion_id"], n_splits=3, random_state=42)
    leak = lesion_leakage(meta["lesion_id"], folds)
    assert leak["n_leaking_lesions"] == 0 and leak["n_images"] == len(meta)
    shares = [y[folds == k].mean() for k in range(3)]
    assert max(shares) - min(shares) < 0.01  # stratified: same malignant share per fold
    assert np.bincount(folds).min() > len(meta) / 3 - 50
    # the seed reaches the split
    assert not np.array_equal(folds, make_folds(y, meta["lesion_id"], n_splits=3, random_state=43))


def test_grouped_folds_need_lesion_ids():
    with pytest.raises(ConfigError, match="--split stratified"):
        make_folds(np.array([0, 1] * 6), None, n_splits=3, split="grouped")
    with pytest.raises(DataError, match="at least n_splits"):
        make_folds(np.array([0] * 10 + [1]), None, n_splits=3, split="stratified")


# --------------------------------------------------------------------------- recipe pieces
def test_class_weights_and_loss():
    w = T.class_weights([0] * 8 + [1] * 2)
    np.testing.assert_allclose(w, [10 / 16, 10 / 4])
    loss = T.build_loss(tiny_config(label_smoothing=0.2), [0] * 8 + [1] * 2)
    assert loss.label_smoothing == 0.2
    np.testing.assert_allclose(loss.weight.numpy(), [0.625, 2.5])
    assert T.build_loss(tiny_config(class_weights=False), [0, 1]).weight is None


@pytest.mark.parametrize("arch, early, deep, head", [
    ("resnet50", "layer2.0.conv1.weight", "layer3.0.conv1.weight", "fc.1.weight"),
    ("densenet121", "features.denseblock1.denselayer1.conv1.weight", "features.denseblock4.denselayer1.conv1.weight",
     "classifier.1.weight"),
    ("efficientnet_b3", "features.1.0.block.0.0.weight", "features.6.0.block.0.0.weight",
     "classifier.1.weight"),  # torchvision's (Dropout, Linear) head reused, p set to the paper's
])
def test_differential_learning_rates(arch, early, deep, head):
    cfg = get_config(f"table2-{arch}")
    model = T.build_model(cfg.replace(pretrained=False))
    opt = T.build_optimizer(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(p)]: g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(lr_of) == len(names)  # every parameter in exactly one group
    assert (lr_of[early], lr_of[deep], lr_of[head]) == (cfg.lr_early, cfg.lr_deep, cfg.lr_head)
    assert cfg.lr_early < cfg.lr_deep < cfg.lr_head
    assert all(g["weight_decay"] == cfg.weight_decay for g in opt.param_groups)
    single = T.build_optimizer(model, cfg.replace(differential_lr=False))
    assert [g["lr"] for g in single.param_groups] == [cfg.lr_head]


def test_cosine_schedule_and_none():
    cfg = tiny_config(max_epochs=4, scheduler="cosine")
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    sched = T.build_scheduler(opt, cfg)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
    assert T.build_scheduler(opt, cfg.replace(scheduler="none")) is None


def test_pretrained_weights_from_a_local_file(tmp_path, caplog):
    import torchvision

    src = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(src.state_dict(), path)
    cfg = get_config("cpu-small").replace(pretrained=True)
    model = T.build_model(cfg, weights=path)
    torch.testing.assert_close(model.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    assert model.fc[1].weight.shape == (2, 512)
    with caplog.at_level(logging.WARNING, logger="reference_model.train"):
        T.build_model(cfg)
    assert "RANDOM INITIALISATION" in caplog.text
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(Exception, match="do not fit"):
        T.build_model(cfg, weights=tmp_path / "bad.pth")


def test_a_training_step_lowers_the_loss(tiny):
    sub, images = tiny
    cfg = tiny_config(dropout=0.0, label_smoothing=0.0, augment=False)
    T.seed_everything(0)
    model = T.build_model(cfg)
    ds = ImageTensorDataset(images[:16], sub.labels[:16])
    loader = T.make_loader(ds, batch_size=16, shuffle=False)
    loss_fn = T.build_loss(cfg, ds.labels)
    opt = T.build_optimizer(model, cfg)
    losses = [T.train_one_epoch(model, loader, loss_fn, opt)["loss"] for _ in range(4)]
    assert losses[-1] < 0.8 * losses[0], losses
    log = T.train_one_epoch(model, loader, loss_fn, opt)
    assert log["n"] == 16 and log["images_per_s"] > 0


def test_early_stopping_rule_keeps_the_best_weights():
    model = torch.nn.Linear(1, 1)
    stop = T.EarlyStopping(patience=2)
    decisions = []
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.55, 0.7]):
        with torch.no_grad():
            model.weight.fill_(epoch)
        decisions.append(stop.step(loss, model))
    assert decisions == [False, False, False, True, True]
    assert (stop.best_epoch, stop.best_loss) == (1, 0.5)
    assert float(stop.best_state["weight"]) == 1.0
    with pytest.raises(ConfigError, match="patience"):
        T.EarlyStopping(patience=0)


def test_early_stopping_triggers_in_the_training_loop(tiny, monkeypatch):
    """The loop stops after `patience` epochs without improvement and restores the best weights."""
    sub, images = tiny
    val_losses = iter([0.9, 0.4, 0.5, 0.6, 0.3, 0.2])  # best at epoch 1, then 2 worse epochs
    snapshots = []
    real_evaluate = T.evaluate

    def scripted(model, loader, loss_fn=None, **kw):
        out = real_evaluate(model, loader, loss_fn, **kw)
        if loss_fn is not None:  # the per-epoch validation, not the final scoring
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
            out["loss"] = next(val_losses)
        return out

    monkeypatch.setattr(T, "evaluate", scripted)
    cfg = tiny_config(max_epochs=6, patience=2, augment=False)
    idx = np.r_[0:4, 8:12]  # 4 malignant + 4 benign for training, the others for validation
    train_ds = ImageTensorDataset(images[idx], sub.labels[idx])
    val_ds = ImageTensorDataset(images[np.r_[4:8, 12:16]], sub.labels[np.r_[4:8, 12:16]])
    res = T.fit_fold(cfg, train_ds, val_ds)
    assert res.stopped_early and len(res.history) == 4 and res.best_epoch == 1 and res.best_val_loss == 0.4
    for k, v in res.model.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k])


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    cfg = tiny_config(max_epochs=3)
    model = T.build_model(cfg)
    opt = T.build_optimizer(model, cfg)
    sched = T.build_scheduler(opt, cfg)
    opt.step()
    sched.step()
    stop = T.EarlyStopping(patience=3)
    stop.step(0.7, model)
    T.save_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, scheduler=sched, stopper=stop,
                      history=[{"epoch": 0, "val_loss": 0.7}], epoch=0)
    model2 = T.build_model(cfg)
    opt2 = T.build_optimizer(model2, cfg)
    sched2 = T.build_scheduler(opt2, cfg)
    stop2 = T.EarlyStopping(patience=3)
    nxt, hist = T.load_checkpoint(tmp_path / "ck.pt", model=model2, optimizer=opt2, scheduler=sched2, stopper=stop2)
    assert nxt == 1 and hist == [{"epoch": 0, "val_loss": 0.7}]
    assert sched2.last_epoch == 1 and stop2.best_loss == 0.7
    torch.testing.assert_close(model2.fc[1].weight, model.fc[1].weight)


# --------------------------------------------------------------------------- TTA ensemble
class _Affine(torch.nn.Module):
    """Two logits from fixed weights on the pixel means of the left and top halves."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        left = x[:, :, :, : w // 2].mean(dim=(1, 2, 3))
        top = x[:, :, : h // 2, :].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(left), self.a * left + self.b * top], dim=1)


def test_tta_views_shape_and_content():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    v = tta_views(x, ["identity", "hflip", "vflip", "hvflip"])
    assert v.shape == (4, 2, 3, 4, 5)
    torch.testing.assert_close(v[1], x.flip(-1))
    torch.testing.assert_close(v[2], x.flip(-2))
    torch.testing.assert_close(v[3], x.flip(-1).flip(-2))
    with pytest.raises(ConfigError, match="TTA"):
        tta_views(x, ["rot90"])


def test_tta_ensemble_averages_probabilities_over_models_and_flips():
    torch.manual_seed(0)
    x = torch.rand(5, 3, 8, 8)
    models = [_Affine(4.0, -2.0), _Affine(-1.0, 3.0)]
    names = ["identity", "hflip", "vflip", "hvflip"]
    ens = TTAEnsemble(models, tta=names)
    out = ens(x)
    assert out.shape == (5, 2)
    expected = torch.stack([torch.softmax(m(v), dim=1) for m in models for v in tta_views(x, names)]).mean(0)
    torch.testing.assert_close(out.exp(), expected)
    # skinaudit's two-logit softmax recovers exactly the averaged probability
    from skinaudit.models import probabilities_from_outputs

    np.testing.assert_allclose(probabilities_from_outputs(out.numpy()), expected[:, 1].numpy(), rtol=1e-5)
    # a single model without TTA is that model's softmax
    torch.testing.assert_close(TTAEnsemble(models[:1], tta=["identity"])(x).exp(), torch.softmax(models[0](x), 1))


# --------------------------------------------------------------------------- threshold
def test_threshold_is_skinaudits_recall_constrained_search(trained):
    from skinaudit.thresholds import RecallConstrainedThreshold

    from reference_model.pipeline import choose_threshold

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.clip(0.35 * y + rng.uniform(0, 0.65, 300), 0, 1)
    for gamma, step in ((0.85, 0.02), (0.6, 0.05)):
        cfg = tiny_config(gamma=gamma, step=step, threshold_rule="recall")
        ref = RecallConstrainedThreshold(gamma=gamma, step=step).fit(y, s)
        got = choose_threshold(y, s, cfg)
        assert (got["threshold"], got["feasible"]) == (ref.threshold_, ref.feasible_)
    assert choose_threshold(y, s, tiny_config(threshold_rule="fixed", threshold=0.37))["threshold"] == 0.37
    # and in a real run: model_info's thresholds are the search on the stored validation scores
    sub, out, log = trained
    val = pd.read_csv(out / "val_scores.csv")
    ref = RecallConstrainedThreshold(gamma=0.85, step=0.02).fit(val["label"], val["score"])
    info = json.loads((out / "model_info.json").read_text())
    assert info["thresholds"]["model.pt"] == ref.threshold_


# --------------------------------------------------------------------------- end-to-end + export
def test_train_cv_writes_the_outputs(trained):
    sub, out, log = trained
    for name in ("model.pt", "model.pt2", "model_state.pt", "model_info.json", "training_log.json", "val_scores.csv"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "training_log.json").read_text())
    assert saved["config"]["image_size"] == SIZE and saved["folds"]["trained"] == [0]
    assert saved["leakage"]["n_leaking_lesions"] == 0
    assert saved["history"][0]["train_images_per_s"] > 0 and saved["throughput"]["ensemble_tta_images_per_s"] > 0
    val = pd.read_csv(out / "val_scores.csv")
    assert set(val["fold"]) == {0} and len(val) == sum(np.array(saved["folds"]["sizes"])[[0]])


def test_resume_continues_from_the_checkpoint(trained, tiny, tmp_path):
    """An interrupted fold (checkpoint, no best_state) resumes at the next epoch; with every
    epoch done it only restores the best weights, so the scores are those of the first run."""
    import shutil

    from reference_model.pipeline import train_cv

    sub, out, log = trained
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "fold0" / "best_state.pt").unlink()
    (copy / "fold0" / "val_scores.csv").unlink()
    again = train_cv(tiny_config(), sub, out_dir=copy, images=tiny[1], resume=True)
    assert again["history"] == log["history"]  # restored from the checkpoint, no new epoch
    pd.testing.assert_frame_equal(pd.read_csv(copy / "val_scores.csv"), pd.read_csv(out / "val_scores.csv"))


def test_exported_models_score_like_the_in_memory_model(trained):
    """skinaudit.models.load_model + score_dataset on the exported files reproduce the
    validation scores the in-memory model produced during training."""
    from skinaudit.models import load_model, score_dataset

    sub, out, _ = trained
    val = pd.read_csv(out / "val_scores.csv")
    ds = sub.subset(val["image_id"])
    state = score_dataset(load_model(out / "model_state.pt", arch="resnet18", image_size=SIZE), ds)
    np.testing.assert_allclose(state["score"], val["score_plain"], atol=1e-5)
    script = score_dataset(load_model(out / "model.pt", image_size=SIZE), ds)
    np.testing.assert_allclose(script["score"], val["score"], atol=1e-5)  # 1 model x TTA (identity, hflip)
    program = score_dataset(load_model(out / "model.pt2", image_size=SIZE), ds)  # torch.export: the same ensemble
    np.testing.assert_allclose(program["score"], val["score"], atol=1e-5)
    info = json.loads((out / "model_info.json").read_text())
    assert info["thresholds"]["model.pt2"] == info["thresholds"]["model.pt"]
    assert not np.allclose(val["score"], val["score_plain"])  # TTA did change the scores


def test_export_functions_round_trip(tmp_path, tiny):
    from skinaudit.models import Preprocess, load_model

    from reference_model.data import resize_like_audit
    from reference_model.export import export_torchscript, save_state_dict
    from skinaudit.imageio import read_image

    sub, images = tiny
    T.seed_everything(1)
    models = [T.build_model(tiny_config()).eval()]
    ens = TTAEnsemble(models, tta=["identity", "vflip"])
    x = normalize(images[:4])
    assert export_torchscript(ens, tmp_path / "m.pt", example=x)["max_abs_diff"] <= 1e-5
    save_state_dict(models[0], tmp_path / "s.pt")
    raw = [read_image(p) for p in sub.image_paths[:4]]
    np.testing.assert_allclose(Preprocess(size=SIZE)(raw), x.numpy(), atol=1e-6)  # same input pixels
    assert all(np.array_equal(resize_like_audit(r, SIZE), images[i].permute(1, 2, 0).numpy())
               for i, r in enumerate(raw))
    with torch.no_grad():
        want_state = torch.softmax(models[0](x), 1)[:, 1].numpy()
        want_ens = ens(x).exp()[:, 1].numpy()
    np.testing.assert_allclose(load_model(tmp_path / "s.pt", arch="resnet18", image_size=SIZE).predict_proba(raw),
                               want_state, atol=1e-5)
    np.testing.assert_allclose(load_model(tmp_path / "m.pt", image_size=SIZE).predict_proba(raw), want_ens, atol=1e-5)


def test_cli_predict_and_evaluate(trained, tmp_path, shared_data, capsys):
    from skinaudit.models import PrecomputedScores

    from reference_model.cli import main

    sub, out, _ = trained
    root = shared_data("ham10000-224")
    labels = tmp_path / "labels.csv"
    meta = pd.read_csv(root / "HAM10000_metadata.csv")
    meta[meta["image_id"].isin(sub.ids)].to_csv(labels, index=False)
    common = ["--images", str(root / "images"), "--labels", str(labels), "--device", "cpu"]
    assert main(["predict", "--model", str(out / "model_state.pt"), *common, "--out", str(tmp_path / "s.csv")]) == 0
    scores = PrecomputedScores.from_csv(tmp_path / "s.csv")
    assert len(scores.scores) == len(sub)
    assert main(["evaluate", "--model", str(out / "model.pt"), *common, "--out", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    info = json.loads((out / "model_info.json").read_text())
    assert m["metrics"]["threshold"] == info["thresholds"]["model.pt"] and m["metrics"]["n"] == len(sub)
    assert main(["evaluate", "--scores", str(tmp_path / "s.csv"), *common, "--threshold", "0.3"]) == 0
    assert '"threshold": 0.3' in capsys.readouterr().out
    assert main(["train", "--config", "nope", *common, "--out", str(tmp_path / "x")]) == 2
    assert "unknown configuration" in capsys.readouterr().err


# --------------------------------------------------------------------------- results tables
def test_results_tables_in_the_paper_layout(tmp_path):
    from reference_model.results import results_table, write_results

    rows = [{"name": "table4-6-tta-ensemble", "metrics": {"auc": 0.9, "recall": 0.8, "precision": 0.5, "f1": 0.6,
                                                          "fn": 10, "fp": 20}},
            {"name": "table4-1-baseline", "metrics": {"auc": 0.85, "recall": 0.7, "precision": 0.5, "f1": 0.58,
                                                      "fn": 15, "fp": 12}},
            {"name": "cpu-small", "metrics": {"auc": 0.8, "recall": 0.9}}]
    t4 = results_table(rows, "table4")
    assert list(t4["configuration"]) == ["table4-1-baseline", "table4-6-tta-ensemble", "cpu-small"]
    assert t4.loc[0, "paper_auc"] == PAPER_TABLES["table4"]["table4-1-baseline"]["auc"]
    assert math.isnan(t4.loc[2, "paper_auc"]) and math.isnan(t4.loc[2, "fn"])
    assert list(results_table(rows, "table2").columns[2:6]) == ["auc", "recall", "fn", "fp"]
    t3 = results_table(rows, "table3")  # every row against the paper's full model
    assert list(t3["paper_fn"]) == [PAPER_TABLES["table3"]["paper"]["fn"]] * 3
    paths = write_results(rows, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"table{i}.{e}" for i in (2, 3, 4) for e in ("csv", "md"))
    md = (tmp_path / "table4.md").read_text()
    assert "| table4-1-baseline | baseline (single fold, t=0.5) | 0.8500 | 0.7000" in md


# --------------------------------------------------------------------------- first use (#16)
def _subset_labels(sub, root, path):
    meta = pd.read_csv(root / "HAM10000_metadata.csv")
    meta[meta["image_id"].isin(sub.ids)].to_csv(path, index=False)
    return path


def _audit(args):
    from typer.testing import CliRunner

    from skinaudit.cli import app

    fast = ["--jobs", "1", "--n-boot", "200", "--sensitivity-sample", "0", "--no-explain", "--no-report",
            "--no-cache"]
    return CliRunner().invoke(app, [*args, *fast])


def test_audit_of_a_trained_state_dict_uses_the_threshold_in_model_info(trained, tmp_path, shared_data):
    sub, out, _ = trained
    root = shared_data("ham10000-224")
    labels = _subset_labels(sub, root, tmp_path / "labels.csv")
    info = json.loads((out / "model_info.json").read_text())
    want = info["thresholds"]["model_state.pt"]
    res = _audit(["run", "--model", str(out / "model_state.pt"), "--data", "isic", "--images", str(root / "images"),
                  "--labels", str(labels), "--out", str(tmp_path / "audit")])  # no --threshold, --arch, --image-size
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "audit" / "metrics.json").read_text())["threshold"] == want
    assert (f"using model_info.json beside the model: image size {SIZE}, threshold {want:g} (validation), "
            f"arch {info['arch']}") in res.output
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert audit["model"]["preprocess"]["size"] == SIZE


def test_cli_train_prints_epoch_lines_and_a_complete_audit_command(tiny, tmp_path, shared_data, capsys,
                                                                   monkeypatch):
    import shlex

    from reference_model.cli import main

    sub, _ = tiny
    root = shared_data("ham10000-224")
    labels = _subset_labels(sub, root, tmp_path / "labels.csv")
    out = tmp_path / "run"
    assert main(["train", "--config", "cpu-small", "--images", str(root / "images"), "--labels", str(labels),
                 "--out", str(out), "--image-size", str(SIZE), "--epochs", "2", "--n-splits", "2", "--folds", "1",
                 "--batch-size", "8", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    epochs = [ln for ln in captured.err.splitlines() if ln.startswith("fold 0 epoch ")]
    assert len(epochs) == 2 and "val AUC" in epochs[0], captured.err
    command = next(ln.strip() for ln in captured.out.splitlines() if ln.strip().startswith("skinaudit run "))
    assert '--images "$TEST_IMAGES" --labels "$TEST_LABELS"' in command
    monkeypatch.setenv("TEST_IMAGES", str(root / "images"))
    monkeypatch.setenv("TEST_LABELS", str(labels))
    args = [os.path.expandvars(a) for a in shlex.split(command)][1:]   # what a shell would pass
    res = _audit(args)
    assert res.exit_code == 0, res.output
    assert (out / "audit" / "metrics.json").is_file()
    # --quiet: no epoch lines
    assert main(["train", "--config", "cpu-small", "--images", str(root / "images"), "--labels", str(labels),
                 "--out", str(tmp_path / "q"), "--image-size", str(SIZE), "--epochs", "1", "--n-splits", "2",
                 "--folds", "1", "--batch-size", "8", "--device", "cpu", "--quiet"]) == 0
    assert "epoch" not in capsys.readouterr().err
