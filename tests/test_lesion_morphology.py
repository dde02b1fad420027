"""The fast morphology helpers equal scipy / scikit-image where their docstrings say so.

Random arrays and edge cases: sizes 1, odd and even windows, windows larger than the image,
one-row and one-column images, uint8, float and bool data, per-channel (h, w, 3) arrays.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from skimage import measure, morphology, segmentation

from skinaudit.lesion import morphology as mo

SHAPES = [(1, 1), (1, 9), (7, 1), (2, 3), (6, 8), (17, 12), (37, 52)]
SIZES = list(range(1, 12)) + [16, 60]  # 60 > every side
DTYPES = [np.uint8, np.float32, np.float64]


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        for dtype in DTYPES:
            yield (rng.random(shape) * 255).astype(dtype)
        yield rng.integers(0, 3, shape).astype(np.uint8)  # many ties
    yield np.full((9, 10), 7, dtype=np.uint8)  # constant


def _square(k, channels=False):
    return np.ones((k, k, 1) if channels else (k, k), dtype=bool)


@pytest.mark.parametrize("k", SIZES)
def test_running_extremum_equals_scipy_filter1d(k):
    for a in _arrays():
        for axis in (0, 1):
            for op, ref in ((np.maximum, ndi.maximum_filter1d), (np.minimum, ndi.minimum_filter1d)):
                out = mo.running_extremum(a, k, axis, op)
                assert out.dtype == a.dtype and out.shape == a.shape
                assert np.array_equal(out, ref(a, k, axis=axis, mode="nearest")), (a.shape, a.dtype, axis)


@pytest.mark.parametrize("k", SIZES)
def test_square_filter_equals_scipy_max_min_filters(k):
    for a in _arrays(1):
        assert np.array_equal(mo.square_filter(a, k, np.maximum), ndi.maximum_filter(a, size=k, mode="nearest"))
        assert np.array_equal(mo.square_filter(a, k, np.minimum), ndi.minimum_filter(a, size=k, mode="nearest"))


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9, 11, 61])
def test_square_filter_equals_skimage_dilation_erosion_for_odd_sizes(k):
    for a in _arrays(2):
        for mode in ("reflect", "nearest", "mirror", "ignore"):
            assert np.array_equal(mo.square_filter(a, k, np.maximum), morphology.dilation(a, _square(k), mode=mode))
            assert np.array_equal(mo.square_filter(a, k, np.minimum), morphology.erosion(a, _square(k), mode=mode))


@pytest.mark.parametrize("k", [3, 11])
def test_square_filter_of_a_bool_mask_is_a_binary_dilation(k):
    rng = np.random.default_rng(3)
    for shape in SHAPES:
        m = rng.random(shape) < 0.1
        ref = ndi.binary_dilation(m, structure=_square(k))
        assert np.array_equal(mo.square_filter(m, k, np.maximum), ref)
        assert mo.square_filter(m, k, np.maximum).dtype == bool


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9, 61])
def test_closing_opening_tophats_equal_scipy_and_skimage_for_odd_sizes(k):
    for a in _arrays(4):
        fp = _square(k)
        assert np.array_equal(mo.closing(a, k), ndi.grey_closing(a, size=(k, k), mode="nearest"))
        assert np.array_equal(mo.opening(a, k), ndi.grey_opening(a, size=(k, k), mode="nearest"))
        assert np.array_equal(mo.closing(a, k), morphology.closing(a, fp))
        assert np.array_equal(mo.opening(a, k), morphology.opening(a, fp))
        bth, wth = mo.black_tophat(a, k), mo.white_tophat(a, k)
        assert bth.dtype == a.dtype and wth.dtype == a.dtype
        assert np.array_equal(bth, morphology.black_tophat(a, fp))
        assert np.array_equal(wth, morphology.white_tophat(a, fp))
        assert (bth >= 0).all() and (wth >= 0).all()
        assert (mo.closing(a, k) >= a).all() and (mo.opening(a, k) <= a).all()  # extensive / anti-extensive


@pytest.mark.parametrize("k", [3, 7])
def test_per_channel_closing_and_tophats(k):
    rng = np.random.default_rng(5)
    for dtype in DTYPES:
        a = (rng.random((23, 31, 3)) * 255).astype(dtype)
        fp = _square(k, channels=True)
        assert np.array_equal(mo.closing(a, k), ndi.grey_closing(a, size=(k, k, 1), mode="nearest"))
        assert np.array_equal(mo.closing(a, k), morphology.closing(a, fp))
        assert np.array_equal(mo.black_tophat(a, k), morphology.black_tophat(a, fp))
        assert np.array_equal(mo.white_tophat(a, k), morphology.white_tophat(a, fp))
        for c in range(3):
            assert np.array_equal(mo.closing(a, k)[..., c], mo.closing(np.ascontiguousarray(a[..., c]), k))


def test_fast_closing_matches_scipy():
    rng = np.random.default_rng(0)
    for dtype, k in ((np.uint8, 9), (np.float32, 7), (np.uint8, 3)):
        g = (rng.random((37, 52)) * 255).astype(dtype)
        ref = ndi.grey_closing(g, size=(k, k), mode="nearest") - g
        assert np.array_equal(mo.black_tophat(g, k), ref)


@pytest.mark.parametrize("k", [2, 4, 6, 8, 16])
def test_even_sizes_are_the_documented_filter_composition(k):
    # documented: for even k, closing = minimum_filter(maximum_filter) with the same off-centre
    # window (k // 2 before, k // 2 - 1 after), not scipy's / scikit-image's closing
    differs = False
    for a in _arrays(6):
        mx = ndi.maximum_filter(a, size=k, mode="nearest")
        mn = ndi.minimum_filter(a, size=k, mode="nearest")
        assert np.array_equal(mo.closing(a, k), ndi.minimum_filter(mx, size=k, mode="nearest"))
        assert np.array_equal(mo.opening(a, k), ndi.maximum_filter(mn, size=k, mode="nearest"))
        differs |= not np.array_equal(mo.closing(a, k), morphology.closing(a, _square(k)))
    assert differs
    a = np.zeros((1, 6), dtype=np.uint8)
    a[0, 2] = 9
    assert mo.closing(a, 2)[0, 2] == 0  # the window never covers its own pixel twice: below a


def test_frame():
    for shape in [(1, 1), (2, 5), (6, 8), (9, 7)]:
        for width in (1, 2, 3, 10):
            f = mo.frame(shape, width)
            inner = np.zeros(shape, dtype=bool)
            inner[width:shape[0] - width, width:shape[1] - width] = True
            assert f.dtype == bool and np.array_equal(f, ~inner), (shape, width)


def test_border_labels():
    rng = np.random.default_rng(7)
    for shape in SHAPES:
        for p in (0.0, 0.3, 0.6, 1.0):
            m = rng.random(shape) < p
            for structure in (None, np.ones((3, 3))):
                labels, _ = ndi.label(m, structure=structure)
                expected = np.unique(labels[mo.frame(labels.shape, 1)])
                assert np.array_equal(mo.border_labels(labels), expected[expected > 0])
            # 8-connected labels: the pixels of border components are what clear_border removes
            labels, _ = ndi.label(m, structure=np.ones((3, 3)))
            removed = (labels > 0) & (segmentation.clear_border(labels) == 0)
            assert np.array_equal(np.isin(labels, mo.border_labels(labels)), removed)


def test_fill_holes_matches_scipy():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m = ndi.binary_opening(rng.random((40, 50)) < 0.6)
        assert np.array_equal(mo.fill_holes(m), ndi.binary_fill_holes(m))


def test_fill_holes_edge_cases_match_scipy():
    rng = np.random.default_rng(8)
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False  # a one-pixel hole
    nested = np.zeros((11, 11), bool)
    nested[1:10, 1:10], nested[3:8, 3:8], nested[5, 5] = True, False, True
    open_hole = ring.copy()
    open_hole[0:5, 4] = False  # the hole opens onto the border: not a hole
    yy, xx = np.mgrid[:9, :9]
    diamond = np.abs(yy - 4) + np.abs(xx - 4) == 3  # an 8-connected outline encloses a 4-connected hole
    cases = [np.zeros((5, 5), bool), np.ones((5, 5), bool), np.ones((1, 7), bool), rng.random((1, 9)) < 0.5,
             ring, nested, open_hole, diamond] + [rng.random(s) < 0.7 for s in SHAPES]
    for m in cases:
        assert np.array_equal(mo.fill_holes(m), ndi.binary_fill_holes(m))
    assert mo.fill_holes(diamond)[4, 4] and mo.fill_holes(ring)[4, 4] and not mo.fill_holes(open_hole)[4, 4]


def test_region_moments_equal_regionprops():
    rng = np.random.default_rng(9)
    for shape in [(60, 80), (1, 30), (25, 1)]:
        m = ndi.binary_opening(rng.random(shape) < 0.55) if min(shape) > 1 else rng.random(shape) < 0.6
        labels, n = ndi.label(m, structure=np.ones((3, 3)))
        area, my, mx, major, minor, theta, ys, xs, lab = mo.region_moments(labels, n)
        assert area.shape == (n + 1,) and area[0] == 0
        assert np.array_equal(labels[ys, xs], lab) and lab.size == (labels > 0).sum()
        for p in measure.regionprops(labels):
            i = p.label
            assert area[i] == p.area
            assert np.allclose((my[i], mx[i]), p.centroid, rtol=0, atol=1e-9)
            assert np.allclose((major[i], minor[i]), (p.axis_major_length, p.axis_minor_length), rtol=0, atol=1e-6)
            if p.axis_major_length - p.axis_minor_length > 1e-6:  # orientation defined
                # theta from the x (column) axis; regionprops' orientation from the row axis
                d = (theta[i] - (np.pi / 2 - p.orientation) + np.pi / 2) % np.pi - np.pi / 2
                assert abs(d) < 1e-9
            assert -np.pi / 2 < theta[i] <= np.pi / 2


def _canonical(adj):
    """csgraph components, each named by its lowest node."""
    _, cl = connected_components(csr_matrix(adj), directed=False)
    return np.array([np.nonzero(cl == c)[0].min() for c in cl], dtype=int)


@pytest.mark.parametrize("n", [1, 2, 5, 63, 64, 65, 100])
def test_component_labels_equal_csgraph(n):
    rng = np.random.default_rng(n)
    for p in (0.0, 0.02, 0.1, 1.0):
        adj = rng.random((n, n)) < p
        adj |= adj.T
        for small in (64, 0):  # boolean squaring (up to 64 nodes) and the csgraph path
            assert np.array_equal(mo.component_labels(adj, small=small), _canonical(adj)), (n, p, small)


def test_component_labels_of_an_empty_graph():
    assert mo.component_labels(np.zeros((0, 0), dtype=bool)).shape == (0,)
    chain = np.eye(40, k=1, dtype=bool)
    chain |= chain.T  # a 40-node path: the longest closure for the squaring
    assert (mo.component_labels(chain) == 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_component_labels_closure_matches_csgraph(seed):
    rng = np.random.default_rng(seed)
    adj = rng.random((50, 50)) < 0.03
    adj |= adj.T
    fast = mo.component_labels(adj)                # boolean squaring (<= 64 nodes)
    sparse = mo.component_labels(adj, small=0)     # scipy csgraph
    assert np.bincount(fast).max() > 1 and np.array_equal(fast, sparse)
