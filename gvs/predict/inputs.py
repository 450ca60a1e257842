"""What the inputs of `gvs predict` and `gvs report` name: videos, dataset folders and CSV listings -> (video,
label) pairs, labels as indices into a bundle's classes (also used by the whole chain's last stage)."""

from __future__ import annotations

from pathlib import Path

from gvs.core.errors import InputError


def expand_inputs(
    inputs: list[Path], class_names: tuple[str, ...] | list[str], notes: dict[Path, str] | None = None
) -> tuple[list[tuple[Path, int | None]], dict[str, str]]:
    """(video path, label or None) for every video the inputs name, and {input: why nothing was taken}.

    Labels are indices into ``class_names`` (the bundle's classes). A CSV's labels must name one of them (else
    LabelFileError). A dataset folder's labels are translated by name (ignoring case); a video whose label the
    bundle does not know counts as unlabelled, and ``notes`` (when given) gets {video path: why} for it.
    """
    from preprocess.labels import discover

    index_of = {name.lower(): i for i, name in enumerate(class_names)}

    videos, skipped = [], {}
    for given in inputs:
        if given.is_dir():
            try:
                dataset = discover(given)
            except InputError as error:
                skipped[str(given)] = str(error)
                continue
            for clip in dataset.clips:
                name = None if clip.label is None else dataset.classes[clip.label]
                label = None if name is None else index_of.get(name.lower())
                if name is not None and label is None and notes is not None:
                    notes[clip.path] = (
                        f"label {name!r} of {given} is not a class of the bundle ({', '.join(class_names)}): "
                        "counted as unlabelled"
                    )
                videos.append((clip.path, label))
            skipped |= dataset.not_taken
        elif given.suffix.lower() == ".csv" and given.is_file():
            videos.extend(_csv_videos(given, class_names))
        else:  # a video (or something that is not one: decoding says so, for that video only)
            videos.append((given, None))
    return videos, skipped


def _csv_videos(listing: Path, class_names: tuple[str, ...] | list[str]) -> list[tuple[Path, int | None]]:
    """(video path, label or None) of each row of a CSV video[,label] (paths relative to it), read by the one
    reader of that format (preprocess.labels.read_listing: LabelFileError naming the file when its header has no
    'video' column, the line when a row has no path)."""
    from preprocess.labels import label_index, read_listing

    return [
        (
            (listing.parent / row.video).absolute(),
            label_index(row.label, f"{listing}:{row.line}", class_names) if row.label else None,
        )
        for row in read_listing(listing, label_required=False)
    ]
