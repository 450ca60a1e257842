"""Model bundles: ``gvs export`` writes one, ``gvs predict`` loads it (or a RUNS folder), checking every file.

A bundle (layout: :class:`gvs.core.workspace.BundleDir`) holds the models of exactly the fused modalities (the
RUNS files byte for byte), the fusion as the ensemble saves it, ``familiarity.npz`` (how the training clips' hidden
vectors are spread: gvs.predict.familiarity; absent from bundles exported before it, which predict without
familiarity flags), ``bundle.json`` (classes, modalities, fusion, preprocessing parameters, feature fingerprints,
training data and its kind, familiarity threshold, report metrics, versions) and ``manifest.json`` (the sha256 of
every other file). ``BUNDLE.zip`` holds the same files under one folder ``BUNDLE/``.

Loading runs no code from the bundle: every file is checked against the manifest first, Keras models load in safe
mode, the fusion's arrays without pickle, everything else is JSON; a zip member that would land outside its folder
is refused.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from gvs import __version__
from gvs.core.errors import CorruptFileError, DiskError, InputError, RunError
from gvs.core.io import (
    atomic_write_bytes,
    atomic_write_json,
    digest_of,
    disk_errors,
    read_json,
    sha256_of,
    staged_folder,
)
from gvs.core.vocabulary import CLASS_NAMES, MODALITIES
from gvs.core.workspace import (
    BundleDir,
    RunFolder,
    RunsDir,
    last_bundle_pointer,
    load_keras_model,
    unpacked_bundle_dir,
)
from preprocess.config import PreprocessConfig, merge_backends

from .familiarity import FAMILIARITY_FILE, NO_FAMILIARITY, Familiarity, fit_familiarity
from .training_data import demo_banner, describe_training_data

if TYPE_CHECKING:
    import keras

    from ensemble.fusions import Fusion

log = logging.getLogger(__name__)

BUNDLE_FORMAT = BundleDir.FORMAT
DEFAULT_KINDS: tuple[str, ...] = ("fc", "soft")  # the default fusion: the first kind fitted, over the most modalities
EXPORT_HINT = "`gvs export --runs RUNS --out BUNDLE`"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same files give the same zip


@dataclass
class Bundle:
    """Everything prediction needs, from a bundle folder, its zip or a RUNS folder; models are loaded on first use.

    Attributes
    ----------
    root : the folder the files are read from (the unpacked copy for a zip, RUNS itself for a RUNS folder)
    config : the preprocessing parameters the models' features were made with
    modalities : the fused modalities, sorted (the fusion's ``modalities_``)
    fusion_name, fusion_kind : e.g. ``fc-audio+pose`` and ``fc``
    info : bundle.json (for a RUNS folder, the same dict made in memory, "created" None)
    manifest_sha256 : identifies the exact files: the sha256 of manifest.json (for a RUNS folder, of the same kind
        of manifest made in memory of the files it would export)
    model_paths, fusion_folder : where each modality's model and the fusion's RunFolder are
    origin : the path that was given (the .zip for a zip)
    familiarity : how to score how much a window looks like the training clips (gvs.predict.familiarity); None
        for a bundle exported before familiarity flags
    """

    root: Path
    config: PreprocessConfig
    modalities: list[str]
    fusion_name: str
    fusion_kind: str
    info: dict
    manifest_sha256: str
    model_paths: dict[str, Path] = field(repr=False)
    fusion_folder: Path = field(repr=False)
    origin: Path | None = None
    familiarity: Familiarity | None = None
    _models: dict = field(default_factory=dict, init=False, repr=False)
    _fusion: Fusion | None = field(default=None, init=False, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    def model(self, modality: str) -> keras.Model:
        """The model of ``modality`` (features (batch, *input_shape) -> probabilities (batch, 3)), loaded once."""
        if modality not in self.model_paths:
            raise InputError(
                f"{self.origin or self.root} holds models of {', '.join(self.modalities)}, not {modality!r}"
            )
        if modality not in self._models:
            import modalities.architectures  # noqa: F401  registers the toolkit's layers for safe-mode loading

            model = load_keras_model(self.model_paths[modality])
            expected = tuple(self.info["models"][modality]["input_shape"])
            if tuple(model.input_shape[1:]) != expected:
                raise RunError(
                    f"{self.model_paths[modality]} takes features of shape {tuple(model.input_shape[1:])}, but the "
                    f"bundle says {modality} features are {expected}; export the bundle again with {EXPORT_HINT}"
                )
            self._models[modality] = model
        return self._models[modality]

    def fusion(self) -> Fusion:
        """The fitted fusion (an ``ensemble.fusions`` estimator over ``modalities``), loaded once."""
        if self._fusion is None:
            from ensemble.fusions import load_fusion

            self._fusion = load_fusion(self.fusion_folder)
        return self._fusion

    def summary(self) -> dict:
        """What to report with predictions: where the models come from and which exact files they are."""
        return {
            "path": str(self.origin or self.root),
            "manifest_sha256": self.manifest_sha256,
            "fusion": self.fusion_name,
            "fusion_kind": self.fusion_kind,
            "modalities": self.modalities,
            "class_names": self.class_names,
            "format": self.info["format"],
            "gvs_version": self.info["gvs_version"],
            "created": self.info.get("created"),
            "training_data": self.info["training_data"],
            "familiarity": None
            if self.familiarity is None
            else {"threshold": self.familiarity.threshold, "scores": list(self.familiarity.descriptions)},
            "notes": self.notes(),
        }

    def notes(self) -> list[str]:
        """What every output of this bundle says of it: the demo banner, and that it has no familiarity data."""
        banner = demo_banner(self.info)
        return [*([banner] if banner else []), *([NO_FAMILIARITY] if self.familiarity is None else [])]


def choose_fusion(runs: RunsDir, fusion: str | None = None) -> str:
    """The fusion folder name to export from ``runs``.

    ``fusion`` is a folder name under RUNS/fusion/ or a kind (``fc``: the fc fusion over the most modalities);
    None picks the default: the fc fusion over the most modalities, else the soft one. Raises InputError listing
    the fitted fusions when ``fusion`` names none, RunError when there is nothing to export.
    """
    records = {name: read_json(runs.fusion(name).fusion) for name in runs.fusion_names()}
    if not records:
        raise RunError(
            f"{runs.fusion_root}: no fitted fusion; fit them with `gvs fuse --cache CACHE --runs {runs.root}` "
            "(or `gvs run`)"
        )
    fitted = ", ".join(records)

    def widest(kind: str) -> str | None:
        names = [name for name, record in records.items() if record.get("kind") == kind]
        return max(names, key=lambda name: len(records[name].get("modalities", [])), default=None)

    if fusion is None:
        for kind in DEFAULT_KINDS:
            if chosen := widest(kind):
                return chosen
        raise RunError(
            f"{runs.fusion_root}: no fc or soft fusion to use by default (fitted: {fitted}); export one by name "
            f"with `gvs export --runs {runs.root} --fusion NAME --out BUNDLE` and use that bundle, or fit one with "
            f"`gvs fuse --fusion fc --cache CACHE --runs {runs.root}`"
        )
    if fusion in records:
        return fusion
    if chosen := widest(fusion):
        return chosen
    raise InputError(
        f"no fitted fusion {fusion!r} in {runs.fusion_root} (fitted: {fitted}); pass one of them to --fusion, "
        f"or fit it with `gvs fuse --cache CACHE --runs {runs.root}`"
    )


def export_bundle(runs: str | Path, out: str | Path, fusion: str | None = None) -> Path:
    """Write the bundle of ``fusion`` (see :func:`choose_fusion`) from RUNS to ``out`` and ``out``.zip.

    The folder appears only once complete (an earlier bundle there is replaced only then); the zip is written
    after it, and the bundle is remembered as the last exported one (:func:`last_bundle`). Returns the folder.
    """
    runs_dir = RunsDir(runs)
    if not runs_dir.root.is_dir():
        raise InputError(f"{runs_dir.root}: no such runs folder; train and fuse models first with `gvs run`")
    name = choose_fusion(runs_dir, fusion)
    info, models = _describe_runs(runs_dir, name)
    folder = Path(out)
    folder = folder.with_suffix("") if folder.suffix == ".zip" else folder
    if folder.exists() and not (folder.is_dir() and (BundleDir(folder).is_bundle() or not any(folder.iterdir()))):
        raise InputError(
            f"{folder} exists and is not a bundle; choose another --out (an earlier bundle there would be replaced)"
        )
    from ensemble.fusions import load_fusion

    fitted = load_fusion(runs_dir.fusion(name))
    familiarity, info["familiarity"] = fit_familiarity(runs_dir.root, info["modalities"])
    with staged_folder(folder) as staging:
        bundle = BundleDir(staging)
        for modality, source in models.items():
            target = bundle.modality(modality).model
            with disk_errors(staging):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        fitted.save(bundle.fusion)
        if familiarity is not None:
            familiarity.save(bundle.root / FAMILIARITY_FILE)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write_json(bundle.info_path, info | {"created": created})
        atomic_write_json(bundle.manifest_path, {path: sha256_of(bundle.root / path) for path in bundle.files()})
    bundle = BundleDir(folder)
    _write_zip(bundle)
    _remember(bundle)
    return folder


def load_bundle(path: str | Path) -> Bundle:
    """The bundle at ``path``: a bundle folder, its .zip (unpacked once into the user's cache folder), or a RUNS
    folder (its default fusion, read in place).

    Raises CorruptFileError naming a file that is missing, extra or altered (sha256 differs from the manifest),
    RunError naming what makes the bundle incompatible (other classes, a newer format, a missing model), InputError
    when ``path`` is neither.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
            raise InputError(f"{path} is not a bundle .zip; pass a bundle folder or .zip from {EXPORT_HINT}, or RUNS")
        return _load_zip(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such bundle or runs folder; export one with {EXPORT_HINT} (after `gvs run`)")
    if BundleDir(path).is_bundle():
        return _load_folder(path, path)
    runs = RunsDir(path)
    if runs.fusion_root.is_dir() or runs.workspace_path.is_file():
        return _load_runs(runs)
    raise InputError(
        f"{path} is neither a bundle (no {BundleDir(path).info_path.name}) nor a runs folder (no "
        f"{runs.fusion_root.name}/); pass a bundle from {EXPORT_HINT} or the RUNS folder of `gvs run`"
    )


def last_bundle() -> Path | None:
    """The folder (else the .zip) of the last exported bundle if it still exists; None when there is none."""
    pointer = last_bundle_pointer()
    try:
        record = read_json(pointer) if pointer.is_file() else {}
    except CorruptFileError:
        return None
    for key in ("folder", "zip"):
        if record.get(key) and Path(record[key]).exists():
            return Path(record[key])
    return None


def verify_manifest(bundle: BundleDir) -> str:
    """Check every file of ``bundle`` against manifest.json; returns the manifest's sha256.

    Raises CorruptFileError naming the first file that is missing, altered, or not in the manifest.
    """
    again = f"export the bundle again with {EXPORT_HINT}"
    if not bundle.manifest_path.is_file():
        raise CorruptFileError(f"{bundle.manifest_path} is missing, so {bundle.root} cannot be checked; {again}")
    manifest = read_json(bundle.manifest_path)
    if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
        raise CorruptFileError(f"{bundle.manifest_path} is not a {{path: sha256}} manifest; {again}")
    for name, expected in sorted(manifest.items()):
        if not _is_safe_relative(name):
            raise CorruptFileError(f"{bundle.manifest_path} lists {name!r}, a path outside the bundle; {again}")
        file = bundle.root / name
        if not file.is_file():
            raise CorruptFileError(f"{file} is missing from {bundle.root} (its manifest lists it); {again}")
        actual = sha256_of(file)
        if actual != expected:
            raise CorruptFileError(f"{file} was altered: sha256 {actual}, expected {expected}; {again}")
    extra = sorted(set(bundle.files()) - set(manifest))
    if extra:
        raise CorruptFileError(
            f"{bundle.root / extra[0]} is not in the bundle's manifest ({len(extra)} extra file(s): "
            f"{', '.join(extra[:5])}); remove it or {again}"
        )
    return sha256_of(bundle.manifest_path)


def _describe_runs(runs: RunsDir, name: str) -> tuple[dict, dict[str, Path]]:
    """bundle.json's content (without "created") for fusion ``name`` of ``runs``, and each modality's model file.

    Raises RunError when a fused modality has no model, CorruptFileError when a model file no longer has the
    sha256 its training recorded, RunError when the modalities' features disagree on a shared parameter.
    """
    fusion = runs.fusion(name)
    record = read_json(fusion.fusion)
    modalities = list(record["modalities"])
    models, described, params, given_by = {}, {}, {}, {}
    known = {f.name for f in fields(PreprocessConfig)}
    for modality in modalities:
        run = runs.modality(modality)
        if not run.model.is_file():
            raise RunError(
                f"{run.model}: no trained {modality} model, but fusion {name} fuses it; train it with "
                f"`gvs train {modality} --cache CACHE --runs {runs.root}`"
            )
        config = run.read_config()
        recorded = config.get("model_sha256")
        if recorded and sha256_of(run.model) != recorded:
            raise CorruptFileError(
                f"{run.model} was altered: sha256 {sha256_of(run.model)}, expected {recorded} (its {run.config.name}); "
                f"train it again with `gvs train {modality} --cache CACHE --runs {runs.root} --force`"
            )
        feature_params = config.get("feature_params", {})
        for key, value in feature_params.get("params", {}).items():
            if key not in known:
                raise RunError(
                    f"{run.config}: {modality} features were made with parameter {key!r}, which this gvs "
                    f"{__version__} does not know; use the gvs version that made them or re-run `gvs run`"
                )
            if key == "backend" and key in params:  # each backbone records its own engine: one plan for all
                params[key] = merge_backends(params[key], value)
                continue
            if key in params and params[key] != value:
                raise RunError(
                    f"{run.config} and {runs.modality(given_by[key]).config}: {modality} and {given_by[key]} "
                    f"features were made with {key} {value!r} and {params[key]!r}; preprocess both with the same "
                    f"parameters and retrain (`gvs run`)"
                )
            params[key], given_by[key] = value, modality
        models[modality] = run.model
        described[modality] = {
            "fingerprint": config["fingerprint"],
            "input_shape": list(config["input_shape"]),
            "feature_params": feature_params,
            "report": _report_metrics(run),
        }
    classes = {tuple(runs.modality(m).read_config().get("classes", CLASS_NAMES)) for m in modalities}
    if len(classes) > 1:
        raise RunError(
            f"{runs.root}: the fused models were trained on different class sets {sorted(classes)}; retrain them "
            "from one cache (`gvs run`)"
        )
    info = {
        "format": BUNDLE_FORMAT,
        "gvs_version": __version__,
        "created": None,
        "class_names": list(classes.pop()),
        "modalities": modalities,
        "fusion": {"name": name, "kind": record["kind"], "report": _report_metrics(fusion)},
        "preprocess": asdict(PreprocessConfig(**params)),
        "models": described,
        "training_data": describe_training_data(runs),
    }
    return info, models


def _report_metrics(run: RunFolder) -> dict | None:
    """The report part's metrics of a modality model or a fusion (None when it has none)."""
    return read_json(run.metrics).get("report") if run.metrics.is_file() else None


def _load_runs(runs: RunsDir) -> Bundle:
    """A Bundle read in place from RUNS with its default fusion; its manifest is made in memory."""
    name = choose_fusion(runs)
    info, models = _describe_runs(runs, name)
    fusion = runs.fusion(name)
    files = [
        *models.values(),
        *(p for p in (fusion.fusion, fusion.model, fusion.scaler, fusion.decoder) if p.is_file()),
    ]
    manifest = {p.relative_to(runs.root).as_posix(): sha256_of(p) for p in files}
    return Bundle(
        root=runs.root,
        config=PreprocessConfig(**info["preprocess"]),
        modalities=info["modalities"],
        fusion_name=name,
        fusion_kind=info["fusion"]["kind"],
        info=info,
        manifest_sha256=digest_of(manifest, 64),
        model_paths=models,
        fusion_folder=fusion.folder,
        origin=runs.root,
        familiarity=fit_familiarity(runs.root, info["modalities"])[0],
    )


def _load_folder(root: Path, origin: Path) -> Bundle:
    """A checked Bundle from a bundle folder (see :func:`load_bundle` for what it raises)."""
    bundle = BundleDir(root)
    manifest_sha256 = verify_manifest(bundle)
    info = read_json(bundle.info_path)
    where = bundle.info_path
    again = f"export the bundle again with {EXPORT_HINT}"
    try:
        version, classes, modalities = info["format"], info["class_names"], list(info["modalities"])
        fusion_name, fusion_kind = info["fusion"]["name"], info["fusion"]["kind"]
        preprocess, models = info["preprocess"], info["models"]
    except (KeyError, TypeError) as error:
        raise RunError(f"{where} lacks {error} (not a bundle.json this gvs reads); {again}") from error
    if not isinstance(version, int) or version != BUNDLE_FORMAT:
        newer = isinstance(version, int) and version > BUNDLE_FORMAT
        raise RunError(
            f"{where}: bundle format {version!r} (written by gvs {info.get('gvs_version')}); this gvs {__version__} "
            f"reads format {BUNDLE_FORMAT}: "
            + (
                f"upgrade gvs, or {again} from this version"
                if newer
                else f"its fusion predates missing-modality fusions; refit it (`gvs fuse`) and {again}"
            )
        )
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise RunError(f"{where}: class_names {classes!r} is not a list of names; {again}")
    for modality in modalities:
        if modality not in MODALITIES or modality not in models:
            raise RunError(f"{where}: unknown modality {modality!r} (this gvs knows {', '.join(MODALITIES)}); {again}")
        if not bundle.modality(modality).model.is_file():
            raise RunError(
                f"{bundle.modality(modality).model}: missing, but the fusion needs the {modality} model; {again}"
            )
    record_path = bundle.fusion.fusion
    if not record_path.is_file():
        raise RunError(f"{record_path}: missing, the bundle has no fusion; {again}")
    record = read_json(record_path)
    if record.get("kind") != fusion_kind or sorted(record.get("modalities", [])) != sorted(modalities):
        raise RunError(
            f"{record_path} holds a {record.get('kind')} fusion of {'+'.join(record.get('modalities', []))}, but "
            f"{where.name} says {fusion_kind} of {'+'.join(modalities)}; {again}"
        )
    unknown = sorted(set(preprocess) - {f.name for f in fields(PreprocessConfig)})
    if unknown:
        raise RunError(
            f"{where}: preprocessing parameter(s) {', '.join(unknown)} unknown to this gvs {__version__}; upgrade gvs"
        )
    described = info.get("familiarity") or {}
    familiarity = None
    if described.get("file"):  # always FAMILIARITY_FILE: bundle.json names no path to read
        familiarity = Familiarity.load(root / FAMILIARITY_FILE, modalities, described["threshold"])
    return Bundle(
        root=root,
        config=PreprocessConfig(**preprocess),
        modalities=modalities,
        fusion_name=fusion_name,
        fusion_kind=fusion_kind,
        info=info,
        manifest_sha256=manifest_sha256,
        model_paths={m: bundle.modality(m).model for m in modalities},
        fusion_folder=bundle.fusion.folder,
        origin=origin,
        familiarity=familiarity,
    )


def _load_zip(path: Path) -> Bundle:
    """Unpack ``path`` once (keyed by its sha256) into the user's cache folder and load the bundle inside."""
    target = unpacked_bundle_dir(sha256_of(path))
    if target.is_dir():
        try:
            return _load_folder(_bundle_root(target, path), path)
        except (CorruptFileError, RunError):
            pass  # the unpacked copy was changed or is incomplete: unpack it again from the zip
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for member in members:
                if not _is_safe_relative(member.filename.rstrip("/")):
                    raise CorruptFileError(
                        f"{path}: member {member.filename!r} would be written outside the bundle (absolute path or "
                        f"'..'); refused. This zip was not written by `gvs export`: export the bundle again"
                    )
            with staged_folder(target) as staging:
                archive.extractall(staging, members)
    except (zipfile.BadZipFile, EOFError) as error:
        raise CorruptFileError(f"corrupt bundle zip {path} ({error}); export it again with {EXPORT_HINT}") from error
    return _load_folder(_bundle_root(target, path), path)


def _bundle_root(unpacked: Path, zip_path: Path) -> Path:
    """The bundle folder inside an unpacked zip: the zip's one top folder (or its top level)."""
    if BundleDir(unpacked).is_bundle():
        return unpacked
    tops = [p for p in unpacked.iterdir() if p.is_dir()]
    if len(tops) == 1 and BundleDir(tops[0]).is_bundle():
        return tops[0]
    raise RunError(f"{zip_path} holds no bundle (no bundle.json at its top or in one top folder); {EXPORT_HINT}")


def _is_safe_relative(name: str) -> bool:
    """True for a relative POSIX path with no empty, '.' or '..' part, no backslash and no drive letter."""
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and "\\" not in name
        and not re.match(r"^[A-Za-z]:", name)
        and all(part not in ("", ".", "..") for part in parts)
    )


def _write_zip(bundle: BundleDir) -> Path:
    """``bundle``.zip: every file under the folder ``<name>/``, in sorted order with fixed times (deterministic)."""
    names = sorted([*bundle.files(), bundle.manifest_path.name])

    def write(handle) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                member = zipfile.ZipInfo(f"{bundle.root.name}/{name}", date_time=_ZIP_TIME)
                member.compress_type, member.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                with (bundle.root / name).open("rb") as source, archive.open(member, "w") as target:
                    shutil.copyfileobj(source, target, 1 << 20)

    atomic_write_bytes(bundle.zip_path, write)
    return bundle.zip_path


def _remember(bundle: BundleDir) -> None:
    """Point :func:`last_bundle` at ``bundle``; a cache folder that cannot be written only warns."""
    record = {
        "folder": str(bundle.root.resolve()),
        "zip": str(bundle.zip_path.resolve()),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        atomic_write_json(last_bundle_pointer(), record)
    except (DiskError, OSError) as error:
        log.warning("could not remember %s as the last exported bundle: %s", bundle.root, error)
