"""Bounded fuzzing of the loaders and CSV parsers (hypothesis).

Property: whatever bytes a user's CSV or image holds, skinaudit either loads it or raises a
:class:`~skinaudit.errors.SkinauditError` (one clear sentence), never another exception.

The suite runs a short budget; a longer, repeatable run:

    SKINAUDIT_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py -q -p no:cacheprovider
"""
from __future__ import annotations

import os
import string

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from skinaudit.data import load_isic, load_isic_archive, load_manifest  # noqa: E402
from skinaudit.errors import SkinauditError  # noqa: E402
from skinaudit.imageio import read_image, read_mask  # noqa: E402
from skinaudit.models import PrecomputedScores  # noqa: E402

EXAMPLES = int(os.environ.get("SKINAUDIT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

cell = st.one_of(
    st.sampled_from(["", "0", "1", "benign", "malignant", "nan", "inf", "-1", "1e309", "a", "../x.png",
                     "/etc/passwd", "img/a.png", "<script>", "é", "0.5", "\"", ",", "\n", "MEL"]),
    st.text(alphabet=string.printable, max_size=12),
)
header = st.lists(st.sampled_from(["image_id", "image_path", "label", "mask_path", "group", "ita", "score",
                                   "image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC", "dx", "isic_id",
                                   "benign_malignant", "diagnosis", "x"]), min_size=1, max_size=9)


def _csv(cols, rows):
    def q(v):
        v = str(v)
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v
    return "\n".join([",".join(q(c) for c in cols)] + [",".join(q(v) for v in r) for r in rows]) + "\n"


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "img").mkdir()
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(root / "img" / "a.png")
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(root / "img" / "MEL.png")
    return root


def _expect_clean(fn):
    try:
        fn()
    except SkinauditError:
        pass


@FUZZ
@given(cols=header, rows=st.lists(st.lists(cell, min_size=0, max_size=9), max_size=5))
def test_fuzz_csv_loaders(fuzz_dir, cols, rows):
    text = _csv(cols, rows)
    path = fuzz_dir / "f.csv"
    path.write_text(text, encoding="utf-8")
    _expect_clean(lambda: load_manifest(path))
    _expect_clean(lambda: load_isic(fuzz_dir / "img", path))
    _expect_clean(lambda: load_isic_archive(path, fuzz_dir / "img"))
    _expect_clean(lambda: PrecomputedScores.from_csv(path))


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_raw_bytes(fuzz_dir, data):
    path = fuzz_dir / "raw.csv"
    path.write_bytes(data)
    _expect_clean(lambda: load_manifest(path))
    _expect_clean(lambda: PrecomputedScores.from_csv(path))
    img = fuzz_dir / "raw.png"
    img.write_bytes(data)
    _expect_clean(lambda: read_image(img))
    _expect_clean(lambda: read_mask(img))


@FUZZ
@given(cut=st.integers(min_value=0, max_value=2000), flip=st.integers(min_value=0, max_value=2000),
       fmt=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "GIF"]))
def test_fuzz_damaged_images(fuzz_dir, cut, flip, fmt):
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(cut).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(buf, format=fmt)
    data = bytearray(buf.getvalue())
    if flip < len(data):
        data[flip] ^= 0xFF
    data = bytes(data[: max(1, len(data) - cut)])
    path = fuzz_dir / f"dmg.{fmt.lower()}"
    path.write_bytes(data)
    _expect_clean(lambda: read_image(path))
