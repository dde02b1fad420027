"""The wheel ships the top-level templates/ folder as skinaudit.templates."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_templates(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), "-q"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("skinaudit-*.whl"))
    templates = sorted(p.name for p in (REPO / "templates").iterdir()
                       if p.is_file() and p.suffix in (".html", ".css", ".j2"))
    assert templates, "templates/ holds no report template"
    names = zipfile.ZipFile(wheel).namelist()
    for t in templates:
        assert f"skinaudit/templates/{t}" in names
    assert any(n.startswith("reference_model/") for n in names)
    for w in ("segmenter.pt", "artifacts.pt"):  # the learned detectors' weights (#19)
        assert f"skinaudit/weights/{w}" in names
    # Install into a fresh folder and import from there (not from the repo), with the
    # current environment's dependencies on the path.
    site = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel),
                           "-q"], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    code = ("import importlib.resources as r, skinaudit, sys; "
            "files = sorted(p.name for p in r.files('skinaudit.templates').iterdir()); "
            "from skinaudit.learned import inference as inf; "
            "inf.load('segmenter'), inf.load('artifacts'); "
            "print(skinaudit.__file__); print(','.join(files)); print(inf.weights_path('artifacts'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    where, listed, weights = run.stdout.strip().splitlines()
    assert where.startswith(str(site)) and weights.startswith(str(site))
    assert set(templates) <= set(listed.split(","))
