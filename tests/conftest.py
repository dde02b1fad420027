"""Shared fixtures.

Real dermoscopy data is read in place from ``../shared/data`` (or ``$SKINAUDIT_DATA``)
through :func:`shared_data`, which skips with a clear reason when it is absent.
Phantom datasets are generated once per session into a temporary folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("SKINAUDIT_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    """Return a function ``folder -> Path`` into the shared real-data folder, or skip."""

    def get(folder: str) -> Path:
        path = DATA_ROOT / folder
        if not path.is_dir():
            pytest.skip(f"real data folder {path} is absent (set SKINAUDIT_DATA to the shared/data folder)")
        return path

    return get


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory):
    """40 phantoms (224 px, 30% malignant, artifacts on ~30%) as a manifest dataset."""
    from skinaudit.phantoms import generate_phantoms

    return generate_phantoms(tmp_path_factory.mktemp("phantoms"), n=40, seed=7, artifact_rate=0.3)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep the CLI's default per-image cache out of the user's home during tests."""
    old = os.environ.get("SKINAUDIT_CACHE")
    os.environ["SKINAUDIT_CACHE"] = str(tmp_path_factory.mktemp("skinaudit-cache"))
    yield
    if old is None:
        os.environ.pop("SKINAUDIT_CACHE", None)
    else:
        os.environ["SKINAUDIT_CACHE"] = old
