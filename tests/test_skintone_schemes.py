"""Grouping schemes (skinaudit.skintone.schemes): bins with answers known in advance."""
from __future__ import annotations

import math

import numpy as np
import pytest

from skinaudit import skintone as st
from skinaudit.errors import ConfigError


@pytest.mark.parametrize("scheme,value,label", [
    ("binary", 28.0, "dark"), ("binary", 28.000001, "light"), ("binary", -90, "dark"), ("binary", 90, "light"),
    ("del_bino", -30.0, "dark"), ("del_bino", -29.99, "brown"), ("del_bino", 10.0, "brown"),
    ("del_bino", 28.0, "tan"), ("del_bino", 41.0, "intermediate"), ("del_bino", 55.0, "light"),
    ("del_bino", 55.01, "very_light"),
    ("kinyanjui", 10.0, "brown_or_darker"), ("kinyanjui", 19.0, "tan_1"), ("kinyanjui", 34.5, "intermediate_1"),
    ("kinyanjui", 48.0, "light_1"), ("kinyanjui", 55.0, "light_2"), ("kinyanjui", 55.5, "very_light"),
    ("binary", math.inf, "light"), ("binary", -math.inf, "dark"), ("binary", math.nan, "unknown"),
])
def test_group_boundaries_are_half_open(scheme, value, label):
    assert st.assign_groups([value], scheme)[0] == label


@pytest.mark.parametrize("scheme", ["binary", "del_bino", "kinyanjui", [0, 20.5, 40]])
def test_every_finite_value_lands_in_exactly_one_bin(scheme):
    sch = st.get_scheme(scheme)
    values = np.concatenate([np.linspace(-100, 100, 2001), np.array(sch.cuts), np.array(sch.cuts) + 1e-9])
    groups = st.assign_groups(values, sch)
    assert set(groups) <= set(sch.labels)
    t = sch.table()
    for v, g in zip(values, groups):
        inside = t[(v > t["lower"]) & (v <= t["upper"])]
        assert list(inside["label"]) == [g]


def test_custom_scheme_labels_are_intervals():
    sch = st.get_scheme("10, 28")
    assert sch.labels == ("(-inf, 10]", "(10, 28]", "(28, inf)")
    assert st.get_scheme([28, 10]).cuts == (10.0, 28.0)
    assert list(st.assign_groups([10, 10.5, 30], "10,28")) == ["(-inf, 10]", "(10, 28]", "(28, inf)"]
    assert st.SCHEMES["del_bino"].intervals[0] == "(-inf, -30]"


@pytest.mark.parametrize("bad,match", [("nonsense", "unknown ITA scheme"), ([10, 10], "strictly increase"),
                                       ([math.nan], "finite"), (3.5, "name or a list")])
def test_bad_schemes_raise(bad, match):
    with pytest.raises(ConfigError, match=match):
        st.get_scheme(bad)
