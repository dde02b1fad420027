"""Grad-CAM++ explanations: known-answer maps, heads, borrowed model state, localisation."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_grad_cam")

from skinaudit.errors import ConfigError, DataError, ModelError  # noqa: E402
from skinaudit.explain import (compute_cams, default_target_layer, localisation_by_group,  # noqa: E402
                               localisation_scores, localisation_table, overlay, resolve_layer, save_triptych,
                               sharpen, triptych_cases)
from skinaudit.models import Preprocess, TorchModel, build_torchvision_model, load_model  # noqa: E402

pytestmark = pytest.mark.torch

IDENTITY = Preprocess(size=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
SQUARE = (slice(10, 26), slice(30, 46))


class Tiny(torch.nn.Module):
    """Channel 0 fires only on bright pixels (the square), channel 1 only on dark skin.

    The malignant logit is ``5 * mean(ch0) - 2 * mean(ch1) + bias``: its Grad-CAM++ map is
    channel 0, i.e. the bright square, and the benign evidence is channel 1 (the rest).
    ``heads=2`` gives the antisymmetric two-logit head ``(-z, z)``, equivalent to ``z``.
    """

    def __init__(self, heads: int = 1, bias: float = -1.0):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(2, heads)
        with torch.no_grad():
            self.conv.weight[0] = 1 / 27
            self.conv.bias[0] = -0.7
            self.conv.weight[1] = -1 / 27
            self.conv.bias[1] = 0.5
            w = torch.tensor([5.0, -2.0])
            self.fc.weight[-1] = w
            self.fc.bias[-1] = bias
            if heads == 2:
                self.fc.weight[0] = -w
                self.fc.bias[0] = -bias

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def square_image():
    img = np.full((64, 64, 3), 50, np.uint8)
    img[SQUARE] = 240
    mask = np.zeros((64, 64), bool)
    mask[SQUARE] = True
    return img, mask


def tiny(heads=1, bias=-1.0):
    return TorchModel(Tiny(heads, bias), preprocess=IDENTITY)


# ---------------------------------------------------------------------- known-answer maps

@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("backend", ["gradcam++", "captum"])
def test_cam_of_hand_weighted_net_sits_on_the_bright_square(heads, backend):
    img, mask = square_image()
    cam = compute_cams(tiny(heads), [img], target_layer="act", backend=backend)[0]
    assert cam.shape == (64, 64) and cam.dtype == np.float32
    assert cam.max() == pytest.approx(1.0, abs=1e-5) and cam.min() >= 0
    loc = localisation_scores(cam, mask)
    assert loc["pointing_game"] == 1.0
    assert loc["relevance_mass"] > 0.95          # only the square's 1-px conv halo lies outside
    assert cam[~mask].mean() < 0.05


def test_benign_target_explains_the_skin_not_the_lesion():
    img, mask = square_image()
    cam = compute_cams(tiny(1), [img], target_layer="act", target="benign")[0]
    assert localisation_scores(cam, mask)["relevance_mass"] < 0.05
    assert cam[0, 0] > 0.9                       # dark skin is the benign evidence


@pytest.mark.parametrize("target", ["malignant", "benign", "predicted"])
@pytest.mark.parametrize("bias", [-1.0, -100.0, 100.0])
def test_one_and_two_logit_heads_give_the_same_maps(target, bias):
    img, _ = square_image()
    one = compute_cams(tiny(1, bias), [img], target_layer="act", target=target)[0]
    two = compute_cams(tiny(2, bias), [img], target_layer="act", target=target)[0]
    np.testing.assert_allclose(one, two, atol=1e-5)


def test_issue_428_binary_target_sign_on_a_false_negative():
    """pytorch-grad-cam's BinaryClassifierOutputTarget(category) multiplies the single logit by
    +1/-1 from the category. Given the predicted class of a false negative (0) it explains the
    benign evidence; the malignant map needs the sign of the malignant class, which
    target="malignant" uses whatever the prediction."""
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    img, mask = square_image()
    model = tiny(1, bias=-100.0)                 # predicts benign on a "malignant" square: an FN
    assert model.predict_proba([img])[0] < 0.5
    x = torch.from_numpy(IDENTITY([img]))
    with GradCAMPlusPlus(model.module, [model.module.act]) as cam:
        by_prediction = cam(x, [BinaryClassifierOutputTarget(0)])[0]
        by_malignant = cam(x, [BinaryClassifierOutputTarget(1)])[0]
    ours = compute_cams(model, [img], target_layer="act")[0]
    assert localisation_scores(by_prediction, mask)["relevance_mass"] < 0.05   # the wrong map for an FN
    np.testing.assert_allclose(ours, by_malignant, atol=1e-6)
    assert localisation_scores(ours, mask)["pointing_game"] == 1.0
    predicted = compute_cams(model, [img], target_layer="act", target="predicted")[0]
    np.testing.assert_allclose(predicted, by_prediction, atol=1e-6)


def test_malignant_column_zero_bare_module_and_caller_inference_mode():
    img, mask = square_image()
    net = Tiny(2)
    with torch.no_grad():
        net.fc.weight.copy_(net.fc.weight.flip(0))     # malignant logit now in column 0
        net.fc.bias.copy_(net.fc.bias.flip(0))
    with torch.inference_mode():                       # a caller inside inference mode still gets maps
        bare = compute_cams(net, [img], target_layer="act", preprocess=IDENTITY, positive_index=0)[0]
    wrapped = compute_cams(TorchModel(net, preprocess=IDENTITY, positive_index=0), [img], target_layer="act")[0]
    np.testing.assert_allclose(bare, wrapped, atol=1e-6)
    assert localisation_scores(bare, mask)["pointing_game"] == 1.0
    wrong_column = compute_cams(net, [img], target_layer="act", preprocess=IDENTITY, positive_index=1)[0]
    assert localisation_scores(wrong_column, mask)["relevance_mass"] < 0.05
    assert compute_cams(net, [], target_layer="act", preprocess=IDENTITY) == []


def test_same_maps_as_calling_pytorch_grad_cam_directly():
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    net = build_torchvision_model("resnet18", num_outputs=2).eval()
    model = TorchModel(net, preprocess=Preprocess(size=64))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    ours = np.stack(compute_cams(model, imgs, batch_size=2))
    with GradCAMPlusPlus(net, [net.layer4[-1]]) as cam:
        direct = cam(torch.from_numpy(model.preprocess(imgs)), [ClassifierOutputTarget(1)] * 3)
    np.testing.assert_allclose(ours, direct, atol=1e-5)


def test_batch_size_reaches_the_loop_and_does_not_change_maps():
    img, _ = square_image()
    imgs = [img, np.ascontiguousarray(img[::-1]), np.ascontiguousarray(img[:, ::-1]), img]
    seen = []

    def progress(it, total, desc):
        seen.append(total)
        return it

    a = compute_cams(tiny(), imgs, target_layer="act", batch_size=1, progress=progress)
    b = compute_cams(tiny(), imgs, target_layer="act", batch_size=3, progress=progress)
    assert seen == [4, 2]
    np.testing.assert_allclose(np.stack(a), np.stack(b), atol=1e-6)


def test_maps_come_back_at_each_images_own_size():
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (40, 90, 3), dtype=np.uint8), rng.integers(0, 256, (120, 70, 3), dtype=np.uint8)]
    cams = compute_cams(tiny(), imgs, target_layer="act")
    assert [c.shape for c in cams] == [(40, 90), (120, 70)]
    assert all(0 <= c.min() and c.max() <= 1 for c in cams)


# ---------------------------------------------------------------------- borrowed model state

def _hooks(module):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


@pytest.mark.parametrize("fail", [False, True])
def test_hooks_released_and_model_state_restored(fail):
    model = tiny()
    net = model.module
    net.train()
    net.conv.weight.requires_grad_(False)
    net.fc.weight.grad = torch.ones_like(net.fc.weight)
    grad_before = net.fc.weight.grad
    img, _ = square_image()

    def progress(it, total, desc):
        for k, start in enumerate(it):
            if fail and k == 1:
                raise KeyboardInterrupt("user stopped")
            yield start

    if fail:
        with pytest.raises(KeyboardInterrupt):
            compute_cams(model, [img, img], target_layer="act", batch_size=1, progress=progress)
    else:
        compute_cams(model, [img, img], target_layer="act", batch_size=1, progress=progress)
    assert _hooks(net) == 0
    assert net.training and all(m.training for m in net.modules())
    assert net.conv.weight.requires_grad is False and net.fc.weight.requires_grad is True
    assert net.fc.weight.grad is grad_before and torch.all(grad_before == 1)
    assert net.conv.bias.grad is None


def test_torchscript_is_refused_with_a_reason(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in torch 2.14
        scripted = torch.jit.script(Tiny())
    img, _ = square_image()
    with pytest.raises(ModelError, match="TorchScript.*hooks.*state_dict"):
        compute_cams(TorchModel(scripted, preprocess=IDENTITY), [img])
    with pytest.raises(ConfigError, match="TorchModel or an eager"):
        compute_cams(lambda x: x, [img])


# ---------------------------------------------------------------------- layers

def test_layer_paths_and_defaults():
    net = build_torchvision_model("resnet18", num_outputs=1)
    assert default_target_layer(net) == "layer4.1"
    for path in ("layer4[-1]", "layer4.-1", "layer4.1", " layer4[ -1 ] "):
        assert resolve_layer(net, path)[1] is net.layer4[-1]
    assert resolve_layer(net, "layer3.0.conv1")[0] == "layer3.0.conv1"
    mobile = build_torchvision_model("mobilenet_v3_small", num_outputs=2)
    assert resolve_layer(mobile, default_target_layer(mobile))[1] is mobile.features[-1]
    assert default_target_layer(Tiny()) == "conv"                 # unknown family: last Conv2d


@pytest.mark.parametrize("path, match", [
    ("layer9", "unknown layer 'layer9': the model has no child 'layer9'"),
    ("layer4.7", "index 7 is out of range at layer4"),
    ("layer4.1.nope", "layer4.1 has no child 'nope'"),
    ("", "dotted path"),
])
def test_unknown_layers_fail_with_a_sentence(path, match):
    net = build_torchvision_model("resnet18", num_outputs=1)
    with pytest.raises(ConfigError, match=match):
        resolve_layer(net, path)


@pytest.mark.parametrize("backend", ["gradcam++", "captum"])
def test_a_three_class_head_is_refused(backend):
    net = Tiny()
    net.fc = torch.nn.Linear(2, 3)
    img, _ = square_image()
    with pytest.raises(ModelError, match="returned 3 outputs per image"):
        compute_cams(net, [img], target_layer="act", preprocess=IDENTITY, backend=backend)


def test_layer_that_is_not_a_feature_map_is_refused():
    img, _ = square_image()
    with pytest.raises(ModelError, match="feature map"):
        compute_cams(tiny(), [img], target_layer="fc")


@pytest.mark.parametrize("kwargs, match", [
    ({"target": "melanoma"}, "'target' parameter"),
    ({"backend": "shap"}, "'backend' parameter"),
    ({"batch_size": 0}, "'batch_size' parameter"),
])
def test_bad_options(kwargs, match):
    img, _ = square_image()
    with pytest.raises(ConfigError, match=match):
        compute_cams(tiny(), [img], target_layer="act", **kwargs)


# ---------------------------------------------------------------------- sharpen, overlay, cases

def test_sharpen_keeps_the_top_fraction():
    cam = np.arange(100, dtype=np.float32).reshape(10, 10) / 99
    assert (sharpen(cam) > 0).sum() == 25
    assert (sharpen(cam, keep_top=0.1) > 0).sum() == 10
    kept = sharpen(cam, keep_top=0.1)
    np.testing.assert_array_equal(kept[kept > 0], cam[cam >= cam.ravel()[90]])
    stacked = sharpen(np.stack([cam, cam[::-1]]), keep_top=0.5)
    assert stacked.shape == (2, 10, 10) and ((stacked > 0).sum(axis=(1, 2)) == 50).all()
    assert not sharpen(np.zeros((5, 5))).any()
    with pytest.raises(ConfigError, match="keep_top"):
        sharpen(cam, keep_top=0)
    with pytest.raises(DataError, match="finite values >= 0"):
        sharpen(-cam)


def test_overlay_is_rgb_and_respects_alpha():
    img = np.full((4, 4, 3), 100, np.uint8)
    cam = np.zeros((4, 4))
    cam[0, 0] = 1.0
    hot = overlay(img, cam, alpha=1.0, cmap="jet")
    assert hot[0, 0, 0] > 100 and hot[0, 0, 2] == 0          # jet(1) is dark red: R high, B zero (RGB, not BGR)
    assert overlay(img, cam, alpha=0.0).tolist() == img.tolist()
    half = overlay(img, cam, alpha=0.5, skip_zero=True)
    assert (half[1:, 1:] == 100).all() and half[0, 0, 2] == 50
    with pytest.raises(DataError, match="differs"):
        overlay(img, np.zeros((3, 3)))


def test_triptych_cases_are_deterministic_and_most_confident_first():
    y_true = [1, 1, 1, 0, 0, 0, 1, 0]
    scores = [0.9, 0.2, 0.1, 0.3, 0.8, 0.05, 0.7, 0.95]
    y_pred = [int(s >= 0.5) for s in scores]
    ids = [f"img{i}" for i in range(8)]
    got = triptych_cases(y_true, y_pred, scores, per_kind=2, ids=ids)
    assert got == {"TP": ["img0", "img6"], "TN": ["img5", "img3"], "FN": ["img2", "img1"], "FP": ["img7", "img4"]}
    assert triptych_cases(y_true, y_pred, scores, per_kind=1) == {"TP": [0], "TN": [5], "FN": [2], "FP": [7]}
    assert triptych_cases([0, 0], [0, 0], [0.1, 0.2], per_kind=3)["TP"] == []


def test_save_triptych_writes_a_png(tmp_path):
    from PIL import Image

    img, _ = square_image()
    cam = compute_cams(tiny(), [img], target_layer="act")[0]
    path = save_triptych([("FN img p=0.27", img, cam), ("TP", img, cam)], tmp_path / "fig" / "cases.png", dpi=50)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (450, 300)


# ---------------------------------------------------------------------- localisation

def test_localisation_scores_known_answers():
    mask = np.zeros((10, 10), bool)
    mask[:5] = True                                   # top half
    cam = np.zeros((10, 10))
    cam[:5] = 1.0
    cam[5:] = 1 / 3                                   # 3/4 of the mass on the lesion
    cam[7, 7] = 2.0                                   # but the peak is off it
    got = localisation_scores(cam, mask)
    assert got["relevance_mass"] == pytest.approx(50 / (50 + 49 / 3 + 2))
    assert got["pointing_game"] == 0.0
    assert got["lesion_area_frac"] == 0.5
    keep = (cam >= np.quantile(cam, 0.75))            # 50 ones + the peak
    assert got["iou_top"] == pytest.approx((keep & mask).sum() / (keep | mask).sum())
    assert localisation_scores(cam, mask, keep_top=0.01)["iou_top"] == pytest.approx(0.0)
    empty = localisation_scores(np.zeros((10, 10)), mask)
    assert math.isnan(empty["relevance_mass"]) and "all-zero" in empty["reason"]
    assert "empty lesion mask" in localisation_scores(cam, np.zeros((10, 10)))["reason"]
    with pytest.raises(DataError, match="one shape"):
        localisation_scores(cam, mask[:5])


def test_localisation_by_group_intervals_and_parameters():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "relevance_mass": rng.uniform(0, 1, 30), "iou_top": rng.uniform(0, 1, 30),
        "pointing_game": [1.0] * 8 + [0.0] * 2 + [1.0] * 10 + [0.0] * 10,
        "ita_group": ["dark"] * 10 + ["light"] * 20,
    })
    df.loc[29, ["relevance_mass", "iou_top", "pointing_game"]] = np.nan
    out = localisation_by_group(df, "ita_group", n_boot=500, random_state=1).set_index("group")
    assert list(out.index) == ["dark", "light", "all"]
    dark = out.loc["dark"]
    assert dark["pointing_game"] == 0.8
    # Wilson 95% interval of 8/10 by its formula
    z, n, p = 1.959963984540054, 10, 0.8
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert dark["pointing_game_lo"] == pytest.approx(centre - half) and dark["pointing_game_hi"] == pytest.approx(centre + half)
    assert out.loc["light", "n"] == 20 and out.loc["light", "n_valid"] == 19 and out.loc["all", "n_valid"] == 29
    assert dark["relevance_mass"] == pytest.approx(df["relevance_mass"][:10].mean())
    assert dark["relevance_mass_lo"] < dark["relevance_mass"] < dark["relevance_mass_hi"]
    same = localisation_by_group(df, "ita_group", n_boot=500, random_state=1)
    other_seed = localisation_by_group(df, "ita_group", n_boot=500, random_state=2)
    more = localisation_by_group(df, "ita_group", n_boot=4000, random_state=1)
    wider = localisation_by_group(df, df["ita_group"].to_numpy(), n_boot=500, random_state=1, alpha=0.01)
    pd.testing.assert_frame_equal(same, out.reset_index())
    assert other_seed["relevance_mass_lo"].iloc[0] != out["relevance_mass_lo"].iloc[0]
    assert more["relevance_mass_lo"].iloc[0] != out["relevance_mass_lo"].iloc[0]
    assert (wider["pointing_game_hi"] - wider["pointing_game_lo"]).iloc[0] > dark["pointing_game_hi"] - dark["pointing_game_lo"]
    assert (wider["iou_top_hi"] - wider["iou_top_lo"]).iloc[0] > dark["iou_top_hi"] - dark["iou_top_lo"]
    with pytest.raises(ConfigError, match="n_boot"):
        localisation_by_group(df, "ita_group", n_boot=10)
    # gaps to the reference (default: the group with most valid rows, here "light": 10/19 hits)
    assert (out["reference"] == "light").all()
    assert math.isnan(out.loc["light", "pointing_game_diff"]) and math.isnan(out.loc["all", "pointing_game_diff"])
    assert dark["pointing_game_diff"] == pytest.approx(0.8 - 10 / 19)
    # Newcombe hybrid score interval from the two Wilson intervals (Newcombe 1998, method 10)
    def wilson(k, n):
        p = k / n
        c, h = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return p, c - h, c + h
    (p1, l1, u1), (p2, l2, u2) = wilson(8, 10), wilson(10, 19)
    d = p1 - p2
    assert dark["pointing_game_diff_lo"] == pytest.approx(d - math.hypot(p1 - l1, u2 - p2))
    assert dark["pointing_game_diff_hi"] == pytest.approx(d + math.hypot(u1 - p1, p2 - l2))
    assert dark["relevance_mass_diff_lo"] < dark["relevance_mass_diff"] < dark["relevance_mass_diff_hi"]
    flipped = localisation_by_group(df, "ita_group", reference="dark", n_boot=500, random_state=1).set_index("group")
    assert flipped.loc["light", "pointing_game_diff"] == pytest.approx(-dark["pointing_game_diff"])
    with pytest.raises(ConfigError, match="'reference' group"):
        localisation_by_group(df, "ita_group", reference="medium")
    only = localisation_by_group(df, ["all"] * len(df), n_boot=500)
    assert list(only["group"]) == ["all"] and only["n_valid"].iloc[0] == 29 and only["reason"].iloc[0] == ""
    with pytest.raises(ConfigError, match="may not be named 'all'"):
        localisation_by_group(df, ["all"] * 10 + ["light"] * 20, n_boot=500)


# ---------------------------------------------------------------------- real images

@pytest.mark.realdata
def test_real_image_state_dict_model_and_human_mask(shared_data, tmp_path):
    from skinaudit.imageio import read_image, read_mask

    root = shared_data("isic-uda1")
    ids = ["ISIC_0000000", "ISIC_0000001"]
    imgs = [read_image(root / "images" / f"{i}.jpg") for i in ids]
    masks = [read_mask(root / "masks" / f"{i}_segmentation.png") for i in ids]
    torch.manual_seed(0)
    path = tmp_path / "resnet18_state.pt"
    torch.save(build_torchvision_model("resnet18", num_outputs=1).state_dict(), path)
    model = load_model(path, arch="resnet18", image_size=128)
    cams = compute_cams(model, imgs, batch_size=2)
    assert [c.shape for c in cams] == [im.shape[:2] for im in imgs]
    table = localisation_table(cams, masks, ids=ids)
    assert list(table["image_id"]) == ids and table["reason"].eq("").all()
    assert table["relevance_mass"].between(0, 1).all() and table["pointing_game"].isin([0.0, 1.0]).all()
    assert save_triptych([(i, im, c) for i, im, c in zip(ids, imgs, cams)], tmp_path / "t.png", dpi=40).stat().st_size > 0
