"""`gvs models`: the status table, fetch against a local HTTP server (a good file, a wrong checksum, a 404, a
connection cut mid-file: nothing half-written, one clear line each) and import (checked files in, bad ones refused).

The registry's URLs are pointed at the server with $GVS_MODEL_MIRROR (every file served by its file name)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gvs.cli import main
from preprocess import model_registry
from preprocess.model_registry import MIRROR_ENV, ModelFile, download_url

GOOD = b"good model bytes " * 4096  # 68 KiB: several reads, so a cut lands mid-file
SERVED = {"good.bin": GOOD, "bad.bin": b"another file entirely", "cut.bin": GOOD}  # gone.bin: 404


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        data = SERVED.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 3] if self.path.endswith("cut.bin") else data)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _spec(filename: str, data: bytes = GOOD) -> ModelFile:
    return ModelFile(
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        url=f"https://example.invalid/real/{filename}",
        about=f"test file {filename}",
        licence="MIT",
        source="example.invalid",
    )


@pytest.fixture()
def places(tmp_path: Path, monkeypatch, server: str) -> dict[str, Path]:
    """Empty lookup folders, the mirror at the local server, and a registry of four small test files."""
    folders = {name: tmp_path / name for name in ("models", "home", "shared", "keras")}
    (folders["shared"] / "models").mkdir(parents=True)
    monkeypatch.setenv("GVS_MODEL_DIR", str(folders["models"]))
    monkeypatch.setenv("GVS_HOME", str(folders["home"]))
    monkeypatch.setenv("GVS_SHARED", str(folders["shared"]))
    monkeypatch.setenv("KERAS_HOME", str(folders["keras"]))
    monkeypatch.setenv(MIRROR_ENV, server)
    registry = {name: _spec(f"{name}.bin") for name in ("good", "bad", "gone", "cut")}
    monkeypatch.setattr(model_registry, "REGISTRY", registry)
    return folders


def _files(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_mirror_changes_only_where_files_come_from(monkeypatch) -> None:
    spec = model_registry.REGISTRY["openpose"]
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert download_url(spec) == "https://github.com/quanhua92/human-pose-estimation-opencv/raw/master/graph_opt.pb"
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:1/models/")
    assert download_url(spec) == "http://127.0.0.1:1/models/openpose_mobilenet_thin_graph_opt.pb"


def test_fetch_writes_a_good_file_whole(places, capsys) -> None:
    assert main(["models", "fetch", "good", "--quiet"]) == 0
    assert (places["models"] / "good.bin").read_bytes() == GOOD
    assert _files(places["models"]) == ["good.bin"]
    assert "good: fetched" in capsys.readouterr().out
    assert main(["models", "fetch", "good"]) == 0  # a second fetch downloads nothing
    assert "good: already there" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad", "bad.bin downloaded from http://127.0.0.1:{port}/bad.bin has sha256 "),
        ("gone", "cannot download gone.bin from http://127.0.0.1:{port}/gone.bin: HTTP 404"),
        ("cut", "cannot download cut.bin from http://127.0.0.1:{port}/cut.bin: the connection was cut mid-file"),
    ],
)
def test_a_failed_fetch_leaves_nothing_and_says_so_in_one_line(places, capsys, server, name, message) -> None:
    assert main(["models", "fetch", name, "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and "Traceback" not in error
    assert message.format(port=server.rsplit(":", 1)[1]) in error
    assert "gvs models import FOLDER" in error or "gvs models fetch" in error  # the fix
    assert _files(places["models"]) == []  # no partial file, no temporary file


def test_a_mistyped_mirror_is_one_line_too(places, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MIRROR_ENV, "models.example.com")
    assert main(["models", "fetch", "good", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot download good.bin: unknown url type") and MIRROR_ENV in error


def test_fetch_without_names_takes_every_missing_file_and_reports_each_failure(places, capsys) -> None:
    assert main(["models", "fetch", "--quiet"]) == 2
    error = capsys.readouterr().err
    lines = error.splitlines()
    assert len(lines) == 3 and all(name in line for name, line in zip(("bad.bin", "gone.bin", "cut.bin"), lines))
    assert _files(places["models"]) == ["good.bin"]


def test_list_shows_each_status(places, capsys) -> None:
    places["models"].mkdir()
    (places["models"] / "good.bin").write_bytes(GOOD)
    (places["shared"] / "models" / "bad.bin").write_bytes(b"corrupt")
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line and line[0] != " "}
    assert "verified" in rows["good"] and "68.0 KiB" in rows["good"] and "MIT" in rows["good"]
    assert "wrong checksum" in rows["bad"]
    assert "missing" in rows["gone"] and "missing" in rows["cut"]
    assert "download the missing files: gvs models fetch bad gone cut" in rows["download"]


def test_import_copies_verified_files_and_refuses_wrong_ones_by_name(places, tmp_path, capsys) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "good.bin").write_bytes(GOOD)
    (stick / "bad.bin").write_bytes(b"not the model")
    (stick / "notes.txt").write_text("unrelated")
    assert main(["models", "import", str(stick)]) == 2
    out, error = capsys.readouterr()
    assert "good: imported" in out
    assert error.startswith(f"error: {stick / 'bad.bin'} has the wrong sha256") and error.count("\n") == 1
    assert _files(places["models"]) == ["good.bin"]
    assert (places["models"] / "good.bin").read_bytes() == GOOD
    assert main(["models", "import", str(stick / "notes.txt")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_import_of_a_folder_without_model_files_says_what_it_expects(places, tmp_path, capsys) -> None:
    assert main(["models", "import", str(tmp_path / "shared")]) == 2
    assert "no model files in" in capsys.readouterr().err


def test_fetch_refuses_unknown_names_and_names_the_known_ones(places, capsys) -> None:
    assert main(["models", "fetch", "nope"]) == 2
    assert "unknown model name nope" in capsys.readouterr().err


def test_the_real_pose_file_fetches_from_a_mirror(tmp_path, monkeypatch, shared_dir: Path, capsys) -> None:
    """The real registry entry, served by a local mirror: downloaded, sha256-checked, then found by the lookup."""
    pose = model_registry.REGISTRY["openpose"]
    monkeypatch.setitem(SERVED, pose.filename, (shared_dir / "models" / pose.filename).read_bytes())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
        monkeypatch.setenv("GVS_MODEL_DIR", str(tmp_path / "models"))
        monkeypatch.setenv("GVS_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("GVS_SHARED", str(tmp_path / "no-shared"))
        assert main(["models", "fetch", "openpose", "--quiet"]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    from preprocess.model_files import resolve

    assert resolve("openpose", download=False) == tmp_path / "models" / pose.filename


def test_keras_hash_of_resnet50_is_keras_own() -> None:
    """The registry's md5 of the ResNet-50 notop weights is the one Keras checks (read from its source)."""
    from importlib import util

    keras_dir = Path(list(util.find_spec("keras").submodule_search_locations)[0])
    source = (keras_dir / "src" / "applications" / "resnet.py").read_text()
    assert model_registry.REGISTRY["resnet50-imagenet"].md5 in source


def test_the_engine_cache_folder_is_listed_where_its_module_puts_it(tmp_path, monkeypatch) -> None:
    engine = pytest.importorskip("preprocess.engine")
    from preprocess.model_status import folder_status

    monkeypatch.setenv(engine.ENGINE_CACHE_ENV, str(tmp_path / "engine"))  # the user's own cache may hold IRs
    entry = model_registry.REGISTRY["engine-cache"]
    assert folder_status("engine-cache", entry).state == "empty"
    (engine.engine_cache_dir() / "ir").mkdir(parents=True)
    (engine.engine_cache_dir() / "ir" / "net.xml").write_bytes(b"12345")
    status = folder_status("engine-cache", entry)
    assert (status.state, status.size, status.path) == ("1 file", 5, engine.engine_cache_dir())


def test_fetch_with_everything_here_says_so(places, monkeypatch, capsys) -> None:
    monkeypatch.setattr(model_registry, "REGISTRY", {"good": _spec("good.bin")})
    places["models"].mkdir()
    (places["models"] / "good.bin").write_bytes(GOOD)
    assert main(["models", "fetch"]) == 0
    assert capsys.readouterr().out == "every file gvs downloads is here and verified\n"


def test_the_real_registry_is_listed_with_the_shared_files_verified(shared_dir: Path, capsys) -> None:
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line and line[0] != " "}
    assert set(model_registry.REGISTRY) <= set(rows)
    assert "verified" in rows["openpose"] and "Apache-2.0" in rows["openpose"]
    assert "verified" in rows["fer"] and "MIT" in rows["fer"]
