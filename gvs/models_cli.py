"""`gvs models`: list, check, fetch and import every model file and weight the toolkit can use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gvs.core.errors import GVSError, InputError, ModelFileError

DESCRIPTION = (
    "List every model file and weight the toolkit can use with its status (verified, missing, wrong checksum), "
    "size, licence and source; `fetch` downloads what is missing, `import` copies checked files in from a folder."
)
EPILOG = """\
actions:
  (none), list     the table: NAME STATUS SIZE LICENCE SOURCE, and where each file is
  fetch [NAME...]  download the missing files (default: all that gvs downloads) with a progress bar; each is
                   checked against its checksum and written whole or not at all
  import FOLDER    copy the registry's files found in FOLDER (by file name) into the user cache, after checking
                   their checksums; a file with the wrong checksum is refused by name

lookup rule of the pose and FER files (the first verified copy wins): $GVS_MODEL_DIR, the user cache
(~/.cache/group-video-sentiment/models), $GVS_SHARED/models (else ../shared/models beside the checkout), an
installed package's copy, then a download into $GVS_MODEL_DIR or the user cache. ResNet-50 goes to Keras' own
cache (~/.keras/models); OpenL3, MTCNN and dlib weights come inside their pip packages.
$GVS_MODEL_MIRROR=URL downloads every file from URL/<file name> instead (a mirror or a local server).

examples:
  gvs models                              what is here, verified by checksum
  gvs models fetch                        download everything missing (needs internet)
  gvs models fetch openpose fer           just these two
  gvs models import /media/usb/models     an offline machine: bring the files on a stick
"""
ACTIONS = ("list", "fetch", "import")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs models`."""
    parser.add_argument("action", nargs="?", default="list", choices=ACTIONS, help="list (default), fetch, import")
    parser.add_argument("names", nargs="*", metavar="NAME|FOLDER", help="fetch: entry names; import: one folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


def _home_short(path: Path | None) -> str:
    if path is None:
        return "-"
    text, home = str(path), str(Path.home())
    return "~" + text[len(home) :] if text.startswith(home + "/") else text


def table(rows: list) -> str:
    """The status table: one row per entry, the file's place on the line below it."""
    header = ("NAME", "STATUS", "SIZE", "LICENCE", "SOURCE")
    cells = [(r.name, r.state, _size(r.size), r.entry.licence, r.entry.source) for r in rows]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header) - 1)]
    lines = []
    for i, row in enumerate([header, *cells]):
        lines.append("  ".join([*(str(c).ljust(w) for c, w in zip(row, widths)), str(row[-1])]).rstrip())
        if i:
            path = rows[i - 1].path
            if path is None:
                where = "comes with its package, which is not installed"
            else:
                where = f"{'at' if path.exists() else 'goes to'} {_home_short(path)}"
            lines.append(" " * (widths[0] + 2) + where)
    return "\n".join(lines)


def _hints(rows: list) -> list[str]:
    from preprocess.model_registry import PACKAGE

    hints = []
    downloadable = [r.name for r in rows if r.state in ("missing", "wrong checksum") and getattr(r.entry, "url", None)]
    if downloadable:
        hints.append(f"download the missing files: gvs models fetch {' '.join(downloadable)}")
    for r in rows:
        if getattr(r.entry, "home", None) == PACKAGE and r.state in ("missing", "not installed", "wrong checksum"):
            hints.append(f"{r.name}: {r.entry.install}")
    return hints


def run_list() -> int:
    from preprocess.model_files import search_folders
    from preprocess.model_registry import REGISTRY
    from preprocess.model_status import statuses

    rows = statuses(REGISTRY)
    print(table(rows))
    folders = ", ".join(_home_short(folder) for folder in search_folders())
    print(f"\npose and FER files are looked for in {folders}, then installed packages (docs/models.md)")
    for hint in _hints(rows):
        print(hint)
    return 0


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def run_fetch(names: list[str], progress: bool) -> int:
    """Download the named entries (default every missing downloadable one); 2 when any failed."""
    from preprocess.model_fetch import destination, download
    from preprocess.model_registry import REGISTRY, CacheFolder, download_url
    from preprocess.model_status import VERIFIED, file_status

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise InputError(f"unknown model name {', '.join(unknown)}; `gvs models` lists them: {', '.join(REGISTRY)}")
    failed = fetched = 0
    for name in names or list(REGISTRY):
        entry = REGISTRY[name]
        if isinstance(entry, CacheFolder):
            if names:
                print(f"{name}: nothing to fetch ({entry.about})")
            continue
        status = file_status(name, entry)
        if status.state == VERIFIED:
            if names:
                print(f"{name}: already there ({_home_short(status.path)})")
            continue
        if download_url(entry) is None:
            if names:
                _error(f"{entry.filename} ({name}) is installed with its package, not by gvs: {entry.install}")
                failed += 1
            else:
                print(f"{name}: {status.state}; installed with its package: {entry.install}")
            continue
        target = destination(entry)
        try:
            download(entry, target, progress=progress)
        except ModelFileError as error:
            _error(str(error))
            failed += 1
            continue
        print(f"{name}: fetched {_home_short(target)}")
        fetched += 1
    if not names and not failed and not fetched:
        print("every file gvs downloads is here and verified")
    return 2 if failed else 0


def run_import(folder: Path) -> int:
    """Copy the registry's files found in ``folder`` in; 2 when any had the wrong checksum."""
    from preprocess.model_fetch import import_folder
    from preprocess.model_files import MODEL_FILES
    from preprocess.model_registry import REGISTRY, ModelFile, checksum

    registry = {name: e for name, e in REGISTRY.items() if isinstance(e, ModelFile)}
    results = import_folder(folder, registry)
    if not results:
        names = ", ".join(spec.filename for spec in MODEL_FILES.values())
        raise GVSError(f"no model files in {folder}: expected files named as in `gvs models` (such as {names})")
    refused = 0
    for result in results:
        spec = registry[result.name]
        if result.outcome == "wrong checksum":
            algorithm, digest = checksum(spec)
            _error(f"{result.source} has the wrong {algorithm} (expected {digest}); not imported. Fetch it again.")
            refused += 1
        elif result.outcome == "not importable":
            print(f"{result.name}: skipped {result.source}: installed with its package ({spec.install})")
        else:
            print(f"{result.name}: {result.outcome} {_home_short(result.target)}")
    return 2 if refused else 0


def run(args: argparse.Namespace) -> int:
    """`gvs models [list | fetch NAME... | import FOLDER]`."""
    if args.action == "list":
        if args.names:
            raise InputError("`gvs models` takes no names; did you mean `gvs models fetch NAME...`?")
        return run_list()
    if args.action == "fetch":
        return run_fetch(args.names, progress=not args.quiet)
    if len(args.names) != 1:
        raise InputError("give one folder: gvs models import FOLDER")
    return run_import(Path(args.names[0]))
