"""Issue 16: preprocessing and prediction on a Ray cluster.

The integration tests start a real two-node Ray cluster on this machine with `ray start` (a head and one worker
node, one CPU each, token authentication as docs/cluster.md sets it up), run the Ray engine against it and tear it
down at the end. They compare with the local engine on the same clips and kill an actor in the middle of a run.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gvs.core.cluster import EngineOptions, check_engine_options
from gvs.core.errors import InputError
from gvs.core.vocabulary import MODALITIES
from gvs.core.workspace import CacheDir, PredictionsDir
from gvs.engine.ray_pool import ClusterError, import_ray, plan_actors
from preprocess.config import PreprocessConfig
from preprocess.pipeline import run_preprocess

RAY_START_SECONDS = 120


# Engine options and their messages (no cluster) ---------------------------------------------------------------


def test_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as where it is not installed
    with pytest.raises(InputError, match=r"pip install -e '\.\[ray\]'"):
        import_ray()


def test_ray_options_without_the_ray_engine_are_refused():
    with pytest.raises(InputError, match="--ray-address, --gpus-per-worker need --engine ray"):
        check_engine_options(EngineOptions("local", address="auto", gpus_per_worker=1))
    check_engine_options(EngineOptions("ray", address="auto"))


def test_actor_plan_fits_the_cluster():
    cluster = {"CPU": 16.0, "GPU": 2.0}
    assert plan_actors(cluster, EngineOptions("ray")) == (8, 2.0)  # default: 2 CPUs per actor
    assert plan_actors(cluster, EngineOptions("ray", workers=4)) == (4, 4.0)
    assert plan_actors(cluster, EngineOptions("ray", workers=4, gpus_per_worker=0.5)) == (4, 4.0)
    assert plan_actors({"CPU": 1.0}, EngineOptions("ray")) == (1, 1.0)
    with pytest.raises(ClusterError, match="need 20 CPUs; the cluster has 16"):
        plan_actors(cluster, EngineOptions("ray", workers=10, cpus_per_worker=2))
    with pytest.raises(ClusterError, match="need 4 GPUs; the cluster has 2"):
        plan_actors(cluster, EngineOptions("ray", workers=4, gpus_per_worker=1))


def test_an_address_where_no_cluster_answers_is_refused_at_once():
    from gvs.engine.ray_pool import _check_reachable

    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"--ray-address 127\.0\.0\.1:\d+: no Ray cluster answers there"):
        _check_reachable(f"127.0.0.1:{_free_port()}")
    assert time.monotonic() - started < 10  # Ray's own connect retries for minutes
    with pytest.raises(ClusterError, match="expected auto or HOST:PORT"):
        _check_reachable("head-node")


# A real cluster on this machine ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """The address of a head and one worker node started with `ray start` (1 CPU each); stopped at the end."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    assert "ray" not in sys.modules, "Ray reads its token when imported: the token must be set before"
    ray_command = Path(sys.executable).with_name("ray")
    port = _free_port()
    environment = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # this process drives the cluster: it needs the token before importing Ray
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--object-store-memory=200000000", "--disable-usage-stats"]
    try:
        subprocess.run(
            [ray_command, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
            check=True,
            capture_output=True,
            timeout=RAY_START_SECONDS,
        )
        address = _head_address(port)
        subprocess.run(
            [ray_command, "start", f"--address={address}", *common],
            check=True,
            capture_output=True,
            timeout=RAY_START_SECONDS,
        )
        yield address
    finally:
        subprocess.run([ray_command, "stop", "--force"], capture_output=True, timeout=RAY_START_SECONDS)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _head_address(port: int) -> str:
    """HOST:PORT of the head just started (Ray binds the machine's own address, which may not be 127.0.0.1)."""
    for host in ("127.0.0.1", socket.gethostbyname(socket.gethostname())):
        with socket.socket() as probe:
            probe.settimeout(2)
            if probe.connect_ex((host, port)) == 0:
                return f"{host}:{port}"
    raise RuntimeError(f"the Ray head does not answer on port {port}")


def _clip_folder(folder: Path, clips: list[Path]) -> Path:
    """A folder of links to ``clips`` (real VGAF clips), named as the originals."""
    folder.mkdir(parents=True)
    for clip in clips:
        (folder / clip.name).symlink_to(clip)
    return folder


@pytest.fixture(scope="module")
def three_clips(tmp_path_factory, val_clip: Path, test_clips: list[Path]) -> Path:
    """Three real clips (the labelled Val clip and two test clips): the engines are compared on each of them."""
    return _clip_folder(tmp_path_factory.mktemp("three") / "Clips", [val_clip, *test_clips[:2]])


@pytest.fixture(scope="module")
def five_clips(tmp_path_factory, test_clips: list[Path]) -> Path:
    """Five real clips: enough that an actor is still inside one when the first is finished."""
    return _clip_folder(tmp_path_factory.mktemp("five") / "Clips", test_clips[:5])


def _features(cache: Path, fingerprints: dict[str, str]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """{modality: {clip key: arrays}} of everything a cache holds under ``fingerprints``."""
    stores = {m: CacheDir(cache).store(m, fp) for m, fp in fingerprints.items()}
    return {m: {key: store.read(key)[0] for key in store.keys()} for m, store in stores.items()}


@pytest.mark.slow
@pytest.mark.integration
def test_ray_engine_writes_the_same_cache_as_the_local_engine(ray_cluster, three_clips, tmp_path):
    config = PreprocessConfig()
    local = run_preprocess(three_clips, tmp_path / "local", config, MODALITIES, workers=1, progress=False)
    engine = EngineOptions("ray", address=ray_cluster, workers=2)
    on_ray = run_preprocess(three_clips, tmp_path / "ray", config, MODALITIES, progress=False, engine=engine)

    assert (on_ray.done, on_ray.failed) == (local.done, 0) == (3, 0)
    assert on_ray.fingerprints == local.fingerprints
    expected, got = _features(tmp_path / "local", local.fingerprints), _features(tmp_path / "ray", on_ray.fingerprints)
    for modality in MODALITIES:
        assert sorted(got[modality]) == sorted(expected[modality]), modality
        for key, arrays in expected[modality].items():
            assert sorted(got[modality][key]) == sorted(arrays), (modality, key)
            for name, value in arrays.items():
                other = got[modality][key][name]
                assert other.shape == value.shape and other.dtype == value.dtype, (modality, key, name)
                if np.issubdtype(value.dtype, np.floating):
                    np.testing.assert_allclose(other, value, rtol=0.02, atol=0.02, err_msg=f"{modality} {key} {name}")
                else:
                    np.testing.assert_array_equal(other, value, err_msg=f"{modality} {key} {name}")
    # the run is resumable as a local one is: a second run finds everything cached
    again = run_preprocess(three_clips, tmp_path / "ray", config, MODALITIES, progress=False, engine=engine)
    assert (again.done, again.skipped, again.failed) == (0, local.done, 0)


def _actor_processes() -> list:
    """The processes of our actors while they work on a clip (Ray titles them ray::_Actor.run)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any("_Actor.run" in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.slow
@pytest.mark.integration
def test_a_killed_actor_costs_nothing_but_time(ray_cluster, five_clips, tmp_path):
    cache = tmp_path / "cache"
    killed: list[int] = []

    def kill_one_actor_mid_clip() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            done = list((cache / "features").rglob("*.npz")) if cache.exists() else []
            busy = _actor_processes()
            if done and busy:  # the pool has finished something and an actor is inside a clip now
                killed.append(busy[0].pid)
                os.kill(busy[0].pid, signal.SIGKILL)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_actor_mid_clip, daemon=True)
    killer.start()
    engine = EngineOptions("ray", address=ray_cluster, workers=2)
    summary = run_preprocess(five_clips, cache, PreprocessConfig(), ("pose", "audio"), progress=False, engine=engine)
    killer.join(timeout=5)

    assert killed, "no actor was found working on a clip to kill"
    clips = len(list(five_clips.glob("*.mp4")))
    assert (summary.done, summary.failed) == (clips, 0), summary.failures
    features = _features(cache, summary.fingerprints)
    assert all(len(arrays) == clips for arrays in features.values())  # every file reads back as valid
    assert not list(cache.rglob(".*.tmp")), "a temporary file was left behind"
    assert not list(cache.rglob("*.failed.json"))


@pytest.mark.slow
@pytest.mark.integration
def test_predict_on_ray_matches_predict_here(ray_cluster, small_bundle, val_clip, test_clips, tmp_path):
    from gvs.cli import main

    videos = [str(val_clip), str(test_clips[0]), str(tmp_path / "missing.mp4")]
    assert main(["predict", *videos, "--model", str(small_bundle), "--out", str(tmp_path / "here"), "--quiet"]) == 0
    ray_options = ["--engine", "ray", "--ray-address", ray_cluster, "--workers", "2"]
    assert (
        main(
            ["predict", *videos, "--model", str(small_bundle), "--out", str(tmp_path / "ray"), "--quiet", *ray_options]
        )
        == 0
    )

    import csv

    def rows(folder: Path) -> list[dict[str, str]]:
        with PredictionsDir(folder).videos_csv.open(newline="") as handle:
            return list(csv.DictReader(handle))

    here, there = rows(tmp_path / "here"), rows(tmp_path / "ray")
    assert [r["video"] for r in there] == [r["video"] for r in here]  # input order, whatever finished first
    # done, or flagged: the demo-trained bundle finds real clips unlike its training data
    assert [r["status"] for r in there] == [r["status"] for r in here]
    assert [r["status"] != "failed" for r in here] == [True, True, False]
    for a, b in zip(here, there):
        assert a["verdict"] == b["verdict"]
        for column in a:
            if column.startswith("p_") and a[column]:
                assert float(b[column]) == pytest.approx(float(a[column]), abs=0.02), column
