"""Executors (issue 18): the local process pool and Ray give the same files byte for byte; the
per-image cache is shared across executors and models; Ray workers never outlive the audit."""
from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skinaudit.cli import app
from skinaudit.config import AuditConfig
from skinaudit.errors import ConfigError, MissingDependencyError
from skinaudit.executors import LocalExecutor, RayExecutor, actor_options, make_executor

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'skinaudit[ray]')")


# ------------------------------------------------------------------ without Ray
def test_local_executor_keeps_the_order_of_the_jobs():
    jobs = [-x for x in range(40)]  # abs: a function the workers can import (not one of this test module)
    assert LocalExecutor(2).map(abs, jobs) == list(range(40))
    assert LocalExecutor(1).map(abs, jobs[:5]) == list(range(5))


def _pid(job):
    return os.getpid()


def _inverse(x):
    return 1 / x


def test_an_open_local_executor_keeps_one_pool_until_closed():
    from skinaudit.executors import open_executor

    jobs = list(range(16))
    with open_executor("local", n_jobs=2) as ex:
        first = set(ex.map(_pid, jobs))
        assert os.getpid() not in first and set(ex.map(_pid, jobs)) <= first  # one pool served both calls
        with pytest.raises(ZeroDivisionError):
            ex.map(_inverse, [1, 2, 0, 4, 5, 6, 7, 8])
        assert ex._pool is None  # a pool that raised is not reused
        third = set(ex.map(_pid, jobs))
        assert third and not third & first
    assert ex._pool is None
    from test_workers import _gone_within

    assert _gone_within(first | third, 5.0), "close() left worker processes running"
    plain = LocalExecutor(2)  # not opened: a pool per call, as before
    assert set(plain.map(_pid, jobs)).isdisjoint(plain.map(_pid, jobs)) and plain._pool is None


def test_config_records_the_executor_only_when_it_is_not_the_default():
    assert "executor" not in AuditConfig().to_dict() and "ray_address" not in AuditConfig().to_dict()
    cfg = AuditConfig(executor="ray", ray_address="ray://head:10001")
    saved = cfg.to_dict()
    assert saved["executor"] == "ray" and saved["ray_address"] == "ray://head:10001"
    assert AuditConfig.from_dict(saved) == cfg
    assert AuditConfig.from_dict(AuditConfig().to_dict()) == AuditConfig()


@pytest.mark.parametrize("kwargs, message", [
    ({"executor": "dask"}, r"'executor' parameter must be one of local, ray; got 'dask'"),
    ({"ray_address": "auto"}, r"'ray_address' parameter needs executor='ray'; got executor='local'"),
    ({"executor": "ray", "ray_address": " "}, r"'ray_address' parameter must be a non-empty string or None"),
])
def test_config_rejects_bad_execution_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AuditConfig(**kwargs)


def test_cli_rejects_an_unknown_executor_in_one_line(phantom_dataset, tmp_path):
    res = runner.invoke(app, ["inspect", "--data", "manifest", "--manifest", phantom_dataset.source["manifest"],
                              "--executor", "dask", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.output.strip() == "skinaudit: error: the 'executor' parameter must be one of local, ray; got 'dask'"
    assert not (tmp_path / "o").exists()


def test_executor_ray_without_ray_names_the_extra(monkeypatch, phantom_dataset, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'skinaudit\[ray\]'"):
        make_executor("ray")
    res = runner.invoke(app, ["inspect", "--data", "manifest", "--manifest", phantom_dataset.source["manifest"],
                              "--executor", "ray", "--no-sensitivity", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'skinaudit[ray]'" in lines[0], res.output
    assert not (tmp_path / "o").exists()


def test_model_actors_ask_for_a_gpu_when_the_model_is_on_cuda():
    class OnCuda:
        device = "cuda:0"

    class OnCpu:
        device = "cpu"

    assert actor_options(OnCuda(), 3) == {"concurrency": 3, "num_gpus": 1}
    assert actor_options(OnCpu(), 2) == {"concurrency": 2, "num_cpus": 1}
    assert actor_options(object(), 1) == {"concurrency": 1, "num_cpus": 1}


def test_errors_raised_in_workers_cross_the_process_boundary_whole():
    import pickle

    from skinaudit.errors import ImageError

    err = pickle.loads(pickle.dumps(ImageError("/data/x.jpg", "cannot be decoded")))
    assert (err.path, err.reason, str(err)) == ("/data/x.jpg", "cannot be decoded", "/data/x.jpg: cannot be decoded")
    err = pickle.loads(pickle.dumps(MissingDependencyError("ray", "ray", "--executor ray")))
    assert "pip install 'skinaudit[ray]'" in str(err)


def _put_many(root, key, k):
    from skinaudit.cache import ResultCache

    cache = ResultCache(root)
    for _ in range(20):
        cache.put(key, {"row": json.dumps({"writer": "any", "value": 1.5})})
    return k


def test_cache_writes_from_many_processes_are_atomic(tmp_path):
    from skinaudit.cache import ResultCache

    key = ResultCache(tmp_path).key("0" * 64, "inspect", {"p": 1})
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        assert sorted(pool.starmap(_put_many, [(tmp_path, key, k) for k in range(8)])) == list(range(8))
    entry = ResultCache(tmp_path).get(key)
    assert json.loads(entry["row"]) == {"writer": "any", "value": 1.5}
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.npz"]  # no temp file left


# ------------------------------------------------------------------ with Ray (one local cluster for the module)
@pytest.fixture(scope="module")
def ray_executor():
    if not HAS_RAY:
        pytest.skip("Ray is not installed (pip install 'skinaudit[ray]')")
    ex = RayExecutor(2)
    try:
        ex.map(abs, [-1])  # starts the local cluster once; the CLI runs below join it
        yield ex
    finally:
        ex.close()


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@needs_ray
def test_ray_map_keeps_the_order_of_the_jobs(ray_executor):
    assert ray_executor.map(abs, [-x for x in range(300)]) == list(range(300))


@needs_ray
def test_a_cuda_model_on_a_cluster_without_gpus_is_refused(ray_executor):
    class OnCuda:
        device = "cuda"

    with pytest.raises(ConfigError, match="the Ray cluster has no GPU"):
        ray_executor._actors(OnCuda())


@needs_ray
def test_strict_error_on_a_ray_worker_is_one_line(ray_executor, phantom_dataset, tmp_path):
    table = phantom_dataset.table[["image_id", "image_path", "label"]].head(9).copy()
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    table.loc[4, "image_path"] = str(bad)
    table.to_csv(tmp_path / "m.csv", index=False)
    res = runner.invoke(app, ["inspect", "--data", "manifest", "--manifest", str(tmp_path / "m.csv"), "--strict",
                              "--allow-outside-root",
                              "--executor", "ray", "--no-sensitivity", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"skinaudit: error: {bad}"), res.output


@needs_ray
@pytest.mark.realdata
def test_inspect_ray_writes_the_same_files_as_local_on_60_real_images(ray_executor, shared_data, tmp_path):
    root = shared_data("isic-uda1")
    base = ["inspect", "--data", "isic-archive", "--metadata", str(root / "labels.csv"), "--images",
            str(root / "images"), "--masks", str(root / "masks"), "--limit", "60", "--jobs", "2", "-q"]
    got = {}
    for ex in ("local", "ray"):
        res = runner.invoke(app, [*base, "--executor", ex, "--out", str(tmp_path / ex)])
        assert res.exit_code == 0, res.output
        got[ex] = _files(tmp_path / ex)
    assert set(got["local"]) >= {"inspect.csv", "inspect_sensitivity.csv"}
    assert got["ray"] == got["local"]
    assert len(pd.read_csv(tmp_path / "ray" / "inspect.csv")) == 60


@pytest.fixture(scope="module")
def state_dicts(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from skinaudit.models import build_torchvision_model

    folder = tmp_path_factory.mktemp("models")
    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.save(build_torchvision_model("resnet18", num_outputs=2, paper_head=True).state_dict(),
                   folder / f"m{seed}.pt")
    return folder


@needs_ray
@pytest.mark.slow
def test_run_ray_writes_the_same_files_as_local_on_phantoms(ray_executor, phantom_dataset, state_dicts, tmp_path):
    base = ["run", "--model", str(state_dicts / "m0.pt"), "--arch", "resnet18", "--image-size", "64", "--data",
            "manifest", "--manifest", phantom_dataset.source["manifest"], "--limit", "16", "--n-boot", "200",
            "--cam-sample", "4",
            "--sensitivity-sample", "10", "--threshold", "0.5", "--jobs", "2", "--no-report", "-q"]
    got = {}
    for ex in ("local", "ray"):  # each with its own cold cache: the ray run computes its CAMs on the actors
        res = runner.invoke(app, [*base, "--executor", ex, "--cache", str(tmp_path / f"cache-{ex}"),
                                  "--out", str(tmp_path / ex)])
        assert res.exit_code == 0, res.output
        got[ex] = _files(tmp_path / ex)
    assert set(got["ray"]) == set(got["local"])
    assert any(name.startswith("figures/") for name in got["local"])  # CAM figures were made
    differ = sorted(n for n in got["local"] if got["local"][n] != got["ray"][n])
    assert differ == ["audit.json"], differ  # only the recorded executor (provenance)
    local, ray = (json.loads(got[ex]["audit.json"]) for ex in ("local", "ray"))
    assert "executor" not in local["config"] and ray["config"].pop("executor") == "ray"
    ray.pop("key_order", None), local.pop("key_order", None)
    assert ray == local
    cams = list((tmp_path / "cache-ray").rglob("cam-*.npz"))
    assert cams, "the Ray run stored no CAM in its cache"


@needs_ray
def test_ray_report_adds_only_the_executor_row_and_rerenders(ray_executor, phantom_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    rng = np.random.default_rng(0)
    scores = np.clip(0.3 * phantom_dataset.labels + rng.uniform(0, 0.7, len(phantom_dataset)), 0, 1)
    pd.DataFrame({"image_id": phantom_dataset.ids, "score": scores}).to_csv(tmp_path / "s.csv", index=False)
    base = ["run", "--scores", str(tmp_path / "s.csv"), "--data", "manifest", "--manifest",
            phantom_dataset.source["manifest"], "--limit", "24", "--sensitivity-sample", "10", "--n-boot", "200",
            "--no-pdf", "--no-cache", "-q"]
    for ex in ("local", "ray"):
        res = runner.invoke(app, [*base, "--executor", ex, "--out", str(tmp_path / ex)])
        assert res.exit_code == 0, res.output
    local, ray = ((tmp_path / ex / "report.html").read_text().splitlines() for ex in ("local", "ray"))
    added = [line for line in ray if line not in local]
    assert len(ray) == len(local) + 1 and len(added) == 1 and ">ray<" in added[0], added
    res = runner.invoke(app, ["report", "--from", str(tmp_path / "ray" / "audit.json"), "--out",
                              str(tmp_path / "again"), "--no-pdf"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "again" / "report.html").read_bytes() == (tmp_path / "ray" / "report.html").read_bytes()


@needs_ray
def test_second_model_on_ray_reruns_only_the_model_stages(ray_executor, phantom_dataset, state_dicts, tmp_path):
    from skinaudit.audit import run_audit
    from skinaudit.cache import ResultCache
    from skinaudit.models import load_model

    cache = ResultCache(tmp_path / "cache")
    config = AuditConfig(executor="ray", n_boot=200, sensitivity_sample=0, explain="off")
    dataset = phantom_dataset.head(16)
    n = len(dataset)
    for k, name in enumerate(("m0.pt", "m1.pt")):
        cache.reset_stats()
        model = load_model(state_dicts / name, arch="resnet18", image_size=64)
        run_audit(model, dataset, config, cache=cache, executor=ray_executor, stages=("skintone",))
        inspect = cache.stats["inspect"]
        assert cache.stats["score"] == {"hits": 0, "misses": n}  # a new model: every image re-scored
        assert inspect == ({"hits": 0, "misses": n} if k == 0 else {"hits": n, "misses": 0})


# ------------------------------------------------------------------ workers never outlive the audit
def _tree(root: int) -> set[int]:
    from test_workers import _children

    found, todo = set(), [root]
    while todo:
        for c in _children(todo.pop()):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def _is_ray_worker(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_ray_chunk")
    except OSError:
        return False


def _sigint_as_at_a_terminal():
    # A job started in the background by a non-interactive shell (``cmd &``) has SIGINT ignored, and
    # its children inherit that (POSIX): the Ctrl-C of these tests is the one a terminal delivers.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _start_ray_inspect(folder, out):
    return subprocess.Popen(
        [sys.executable, "-m", "skinaudit.cli", "inspect", "--data", "isic", "--images", str(folder / "images"),
         "--labels", str(folder / "ISIC2018_Task3_Test_GroundTruth.csv"), "--jobs", "2", "--no-sensitivity",
         "--executor", "ray", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
        preexec_fn=_sigint_as_at_a_terminal)


def _signal_state(pid: int) -> dict:
    """Whether SIGINT is ignored / blocked / caught in process ``pid`` (from /proc)."""
    bit = 1 << (signal.SIGINT - 1)
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith(("SigIgn", "SigBlk", "SigCgt")))
    except OSError:
        return {}
    return {k: bool(int(v, 16) & bit) for k, v in fields.items()}


def _watch_until_working(proc) -> set[int]:
    """Every process under ``proc`` until two Ray workers are analysing images."""
    seen, end = set(), time.monotonic() + 90
    while time.monotonic() < end and proc.poll() is None:
        time.sleep(0.3)
        seen |= _tree(proc.pid)
        if sum(map(_is_ray_worker, seen)) >= 2:
            return seen
    pytest.fail("the run ended before its Ray workers could be seen")


@needs_ray
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.realdata
@pytest.mark.slow
def test_ray_processes_end_within_15_s_of_a_sigkill(shared_data, tmp_path):
    from test_workers import _alive, _gone_within

    proc = _start_ray_inspect(shared_data("isic2018-task3-test-224"), tmp_path / "out")
    seen = _watch_until_working(proc)
    assert any(b"raylet" in Path(f"/proc/{p}/cmdline").read_bytes() for p in seen if _alive(p))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert _gone_within(seen, 15.0), f"{[p for p in seen if _alive(p)]} still alive 15 s after the SIGKILL"
    assert not (tmp_path / "out").exists()


@needs_ray
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.realdata
@pytest.mark.slow
def test_ctrl_c_stops_the_ray_cluster_and_writes_nothing(shared_data, tmp_path):
    from test_workers import _alive, _gone_within

    out = tmp_path / "out"
    proc = _start_ray_inspect(shared_data("isic2018-task3-test-224"), out)
    seen = _watch_until_working(proc)
    state = _signal_state(proc.pid)  # said if the run ever shrugs the Ctrl-C off: ignored, blocked or caught
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (err, state)
    assert "interrupted; nothing of this run was written" in err.decode()
    assert _gone_within(seen, 15.0), f"{[p for p in seen if _alive(p)]} still alive 15 s after Ctrl-C"
    assert not out.exists() and not list(tmp_path.glob(".*"))
