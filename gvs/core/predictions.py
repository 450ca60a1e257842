"""One model's predictions on clips (a modality run's or a fusion's): the record and its one file format.

RUNS/<modality>/predictions.csv and RUNS/fusion/<name>/predictions.csv (see :class:`~gvs.core.workspace.RunFolder`)
hold one row per clip::

    key,split,part,label,p_<class>...,pred

``split`` is the clip's split (the first part of its key), ``part`` its part of the partition (train, select,
report, test; empty when none), ``label`` its class index (-1 unknown), one probability per class written with
six decimals, and ``pred`` the predicted class index. :meth:`Predictions.write` writes it and
:meth:`Predictions.read` reads it; nothing else spells the format.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CorruptFileError
from .io import atomic_write_csv
from .vocabulary import CLASS_NAMES


def prediction_columns(class_names: Sequence[str] = CLASS_NAMES) -> list[str]:
    """Columns of a predictions.csv: key, split, part, label, p_<class> per class, pred.

    Parameters
    ----------
    class_names : sequence of str

    Returns
    -------
    columns : list of str
    """
    return ["key", "split", "part", "label", *(f"p_{c}" for c in class_names), "pred"]


def _strings(values, n: int | None = None) -> np.ndarray:
    array = np.asarray(list(values), dtype=str)
    return array.reshape(n if n is not None else len(array))


@dataclass(frozen=True, eq=False)
class Predictions:
    """A model's predictions on n clips.

    Attributes
    ----------
    keys : ndarray of shape (n,), str
        Clip keys, ``<split>/<name>``.
    labels : ndarray of shape (n,), int
        Class index of each clip, -1 when unknown.
    probabilities : ndarray of shape (n, n_classes), float
        Probability of each class of ``class_names``.
    parts : ndarray of shape (n,), str
        Part of the partition each clip is in (train, select, report, test), "" when none.
    class_names : tuple of str
    predicted : ndarray of shape (n,), int
        Predicted class; by default the most probable (a vote may break ties otherwise).
    splits : ndarray of shape (n,), str
        Split of each clip; by default the first part of its key.
    """

    keys: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    parts: np.ndarray
    class_names: tuple[str, ...]
    predicted: np.ndarray | None = None
    splits: np.ndarray | None = None

    def __post_init__(self) -> None:
        keys = _strings(self.keys)
        n, names = len(keys), tuple(str(c) for c in self.class_names)
        probabilities = np.asarray(self.probabilities, dtype=float).reshape(n, len(names))
        predicted = probabilities.argmax(axis=1) if self.predicted is None and n else self.predicted
        splits = [k.split("/")[0] for k in keys] if self.splits is None else self.splits
        fields = {
            "keys": keys,
            "labels": np.asarray(self.labels, dtype=int).reshape(n),
            "probabilities": probabilities,
            "parts": _strings(self.parts, n),
            "class_names": names,
            "predicted": np.asarray([] if predicted is None else predicted, dtype=int).reshape(n),
            "splits": _strings(splits, n),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Predictions):
            return NotImplemented
        return self.class_names == other.class_names and all(
            np.array_equal(getattr(self, name), getattr(other, name))
            for name in ("keys", "labels", "probabilities", "parts", "predicted", "splits")
        )

    __hash__ = None  # type: ignore[assignment]

    def take(self, rows) -> Predictions:
        """The predictions of some clips.

        Parameters
        ----------
        rows : ndarray of shape (n,), bool, or of shape (m,), int
            A mask over the clips or their indices.

        Returns
        -------
        predictions : Predictions
        """
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=int)
        return Predictions(
            self.keys[rows],
            self.labels[rows],
            self.probabilities[rows],
            self.parts[rows],
            self.class_names,
            self.predicted[rows],
            self.splits[rows],
        )

    def part(self, part: str) -> Predictions:
        """The clips of one part (train, select, report, test).

        Parameters
        ----------
        part : str

        Returns
        -------
        predictions : Predictions
        """
        return self.take(self.parts == part)

    def labelled(self) -> Predictions:
        """The clips whose label is known.

        Returns
        -------
        predictions : Predictions
        """
        return self.take(self.labels >= 0)

    def of_split(self, split: str) -> Predictions:
        """The clips whose split (Train, Val, Test) or part (train, select, report, test) is ``split``.

        Parameters
        ----------
        split : str

        Returns
        -------
        predictions : Predictions
        """
        return self.take((self.splits == split) | (self.parts == split))

    def split_names(self) -> str:
        """The splits the clips come from, sorted and joined by "+" ("Train+Val"; "" for no clips).

        Returns
        -------
        names : str
        """
        return "+".join(sorted(set(self.splits.tolist())))

    def rows(self) -> list[list]:
        """The rows of the file, one per clip, as :meth:`write` writes them (probabilities as 6-decimal strings).

        Returns
        -------
        rows : list of list
            key, split, part, label, one probability per class, prediction.
        """
        return [
            [str(key), str(split), str(part), int(label), *(f"{p:.6f}" for p in row), int(pred)]
            for key, split, part, label, row, pred in zip(
                self.keys, self.splits, self.parts, self.labels, self.probabilities, self.predicted
            )
        ]

    def write(self, path: str | Path) -> None:
        """Write ``path`` (atomically) in the predictions.csv format.

        Parameters
        ----------
        path : str or Path
        """
        atomic_write_csv(Path(path), prediction_columns(self.class_names), self.rows())

    @classmethod
    def read(cls, path: str | Path) -> Predictions:
        """The predictions in a predictions.csv (class names from its p_<class> columns, in their order).

        A file without ``split``, ``part`` or ``pred`` columns reads too (the key's split, "", the most probable
        class). A UTF-8 byte-order mark is accepted.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        predictions : Predictions

        Raises
        ------
        CorruptFileError
            The file has no key or label column, or a value that is not a number where one belongs.
        """
        path = Path(path)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            table = list(csv.reader(handle))
        header, body = (table[0], table[1:]) if table else ([], [])
        column = {name: i for i, name in enumerate(header)}
        probability_columns = [i for i, name in enumerate(header) if name.startswith("p_")]
        missing = [name for name in ("key", "label") if name not in column]
        if missing or not probability_columns:
            raise CorruptFileError(
                f"corrupt file {path}: a predictions file needs key, label and p_<class> columns, "
                f"its header is {','.join(header) or 'empty'}; delete it and train or fuse again"
            )

        def values(name: str, default: str | None = None) -> list[str] | None:
            return [row[column[name]] for row in body] if name in column else default

        try:
            pred = values("pred")
            return cls(
                values("key"),
                [int(v) for v in values("label")],
                [[float(row[i]) for i in probability_columns] for row in body],
                values("part", [""] * len(body)),
                tuple(header[i][2:] for i in probability_columns),
                None if pred is None else [int(v) for v in pred],
                values("split"),
            )
        except (ValueError, IndexError) as error:
            raise CorruptFileError(
                f"corrupt file {path}: not a predictions file ({error}); delete it and train or fuse again"
            ) from error
