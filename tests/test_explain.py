"""Grad-CAM++ maps (torch): known-answer maps, heads, borrowed model state, layers, re-exports.

The numeric part (sharpening, overlays, localisation scores) is tested without torch in
test_localisation.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_grad_cam")

from skinaudit import explain, localisation  # noqa: E402
from skinaudit.errors import ConfigError, ModelError  # noqa: E402
from skinaudit.explain import compute_cams, default_target_layer, resolve_layer  # noqa: E402
from skinaudit.localisation import localisation_scores, localisation_table, save_triptych  # noqa: E402
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


def test_the_torch_module_holds_no_numeric_localisation():
    """The numeric part lives in skinaudit.localisation (no torch); explain keeps the CAMs only."""
    for name in ("sharpen", "overlay", "localisation_scores", "localisation_table", "localisation_by_group"):
        assert not hasattr(explain, name) and name in localisation.__all__, name


def test_save_triptych_of_a_real_cam(tmp_path):
    from PIL import Image

    img, _ = square_image()
    cam = compute_cams(tiny(), [img], target_layer="act")[0]
    path = save_triptych([("FN img p=0.27", img, cam), ("TP", img, cam)], tmp_path / "fig" / "cases.png", dpi=50)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (450, 300)


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
