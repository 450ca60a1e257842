"""`gvs report`: one self-contained HTML page per video showing what drove its verdict."""

from __future__ import annotations

import argparse
from pathlib import Path

from gvs.core.command import add_people_arguments, positive_int
from gvs.core.errors import GVSError, InputError
from gvs.core.vocabulary import VIDEO_EXTENSIONS
from preprocess.engine import BACKENDS
from preprocess.precision import PRECISIONS

DESCRIPTION = (
    "Explain the verdict on each video in one HTML page that opens from disk: key moments (occlusion), LIME "
    "superpixels and pixel saliency on the key frame, people and faces, audio, each modality's share, and a "
    "faithfulness check."
)
EPILOG = """\
inputs: as `gvs predict` (video files, folders, CSVs video[,label]); or --cache CACHE --split S --top N for the N
most confident correct and N most confidently wrong clips of a split of a preprocessed dataset.

outputs (in --out, default reports/<first input's name>):
  <video>.html   one self-contained page per video (images embedded; no network needed)
  index.html     links to every page, with each video's verdict, or why it failed

examples:
  gvs report ../shared/data/vgaf/Val/1_1.mp4                       with the last exported bundle
  gvs report wedding.mp4 --model runs/demo/bundle --blur-faces --out reports/wedding
  gvs report wedding.mp4 --explain-class Negative --quick          why not Negative? occlusion + gradients only
  gvs report --cache cache/demo --split Val --top 2 --model runs/demo/bundle
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `gvs report`."""
    parser.add_argument("inputs", nargs="*", type=Path, help="video files, folders or CSVs video[,label]")
    parser.add_argument(
        "--model", type=Path, help="a bundle folder or .zip, or a RUNS folder (default: the last exported bundle)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<first input's name>)")
    parser.add_argument("--cache", type=Path, help="with --split: a feature cache made by `gvs preprocess`")
    parser.add_argument("--split", help="with --cache: the split (Train, Val, Test) whose picked clips get reports")
    parser.add_argument("--top", type=positive_int, default=3, help="clips per pick with --split (default 3)")
    parser.add_argument(
        "--explain-class",
        metavar="CLASS",
        help="explain this class of the bundle (e.g. Negative) instead of the verdict (default: verdict)",
    )
    parser.add_argument("--quick", action="store_true", help="occlusion and gradients only (no LIME): about 4x faster")
    parser.add_argument("--blur-faces", action="store_true", help="blur every detected face in every image")
    add_people_arguments(parser, blur=False)
    parser.add_argument(
        "--lime-samples", type=positive_int, default=200, help="perturbed key frames LIME scores (default 200)"
    )
    parser.add_argument("--segments", type=positive_int, default=40, help="SLIC superpixels of the key frame (40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of LIME, SmoothGrad and random orders (0)")
    parser.add_argument(
        "--files", action="store_true", help="write images beside each page (<video>_files/) instead of embedding"
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="backbone arithmetic (default auto)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="backbone engine (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _videos(args: argparse.Namespace, predictor) -> tuple[list[tuple[Path, str | None]], dict[str, str]]:
    """(video, pick name or None) to report on, and inputs that gave nothing with why."""
    from gvs.predict.inputs import expand_inputs

    if (args.cache is None) != (args.split is None):
        raise InputError("--cache and --split go together: `gvs report --cache CACHE --split Val --top 3`")
    if args.cache is not None:
        if args.inputs:
            raise InputError("give either videos or --cache/--split, not both")
        from .picks import cache_picks

        return [(path, pick) for path, _, pick in cache_picks(args.cache, predictor, args.split, args.top)], {}
    if not args.inputs:
        raise InputError("nothing to report on: give videos, folders or a CSV, or --cache CACHE --split S")
    videos, skipped = expand_inputs(args.inputs, predictor.class_names)
    return [(path, None) for path, _ in videos], skipped


def run(args: argparse.Namespace) -> int:
    """Write one page per video and the index; print where they are and what failed."""
    from tqdm import tqdm

    from gvs.predict.bundle import last_bundle

    from .explain import ReportMaker, ReportOptions
    from .html import page_stem, write_index

    model = args.model or last_bundle()
    if model is None:
        raise InputError("no --model given and no bundle exported yet; run `gvs run` or `gvs export` first")
    if args.model is None:
        print(f"using the last exported bundle: {model}")
    options = ReportOptions(
        args.quick, args.lime_samples, args.segments, args.blur_faces, args.explain_class, args.seed
    )
    maker = ReportMaker(model, options, precision=args.precision, backend=args.backend, people=args.people)
    videos, skipped = _videos(args, maker.predictor)
    if not videos:
        raise InputError(f"no videos in {', '.join(map(str, args.inputs))} ({', '.join(VIDEO_EXTENSIONS)})")
    out = args.out or Path("reports") / (args.split if args.cache else args.inputs[0].stem)
    out.mkdir(parents=True, exist_ok=True)
    entries, taken = [], set()
    bar = tqdm(videos, unit="video", desc="report", disable=args.quiet, dynamic_ncols=True)
    for path, pick in bar:
        try:
            report = maker.explain(path, progress=lambda stage, name=path.name: bar.set_postfix_str(f"{name}: {stage}"))
        except (GVSError, OSError, ValueError) as error:  # one bad video never stops a batch
            entries.append({"video": str(path), "pick": pick, "status": "failed", "reason": f"{path}: {error}"})
            continue
        entry = {"video": str(path), "pick": pick, "status": report.video.status, "reason": report.video.reason}
        if report.window is not None:
            stem = page_stem(path, taken)
            taken.add(stem)
            page = report.write_html(out, stem, embed=not args.files)
            entry |= {
                "page": page.name,
                "verdict": report.video.verdict,
                "probabilities": [float(p) for p in report.video.probabilities],
                "flags": report.video.flags,
                "seconds": sum(report.seconds.values()),
            }
        entries.append(entry)
    bar.close()
    index = write_index(out, entries, maker.predictor.class_names)
    failed = [e for e in entries if "page" not in e]
    print(f"{len(entries) - len(failed)} report(s) written, {len(failed)} failed: open {index}")
    for entry in failed:
        print(f"  FAILED {entry['reason']}")
    for path, why in skipped.items():
        print(f"  not taken {path}: {why}")
    return 0
