"""Human-readable summary of a preprocessing run."""

from __future__ import annotations

import numpy as np

from .pipeline import RunSummary


def format_summary(summary: RunSummary, max_listed: int = 5) -> str:
    """Done / skipped / failed counts, a reason per failed clip, flags, clips missing on disk, stage timings.

    Parameters
    ----------
    summary : RunSummary
    max_listed : int
        Most entries listed of the videos not taken and of the clips missing on disk.

    Returns
    -------
    text : str
        Lines joined by newlines.
    """
    total = summary.done + summary.skipped + summary.failed
    rate = summary.done / summary.seconds if summary.seconds and summary.done else 0.0
    lines = [
        f"{total} clips: {summary.done} done, {summary.skipped} skipped (already cached), "
        f"{summary.failed} failed  [{summary.seconds:.1f} s, {rate:.2f} clips/s]"
    ]
    for key, reasons in summary.failures.items():
        for modality, reason in reasons.items():
            lines.append(f"  FAILED {key} [{modality}]: {reason}")
    for key, flags in summary.flags.items():
        lines.append(f"  note   {key}: {'; '.join(flags)}")
    for path, why in list(summary.not_taken.items())[:max_listed]:
        lines.append(f"  not taken {path}: {why}")
    if len(summary.not_taken) > max_listed:
        lines.append(f"  ... and {len(summary.not_taken) - max_listed} more videos not taken")
    for split, names in summary.missing.items():
        shown = ", ".join(names[:max_listed]) + (" ..." if len(names) > max_listed else "")
        lines.append(f"  {len(names)} clips listed in {split}'s label file are not on disk (e.g. {shown})")
    if summary.stage_seconds:
        stages = ", ".join(f"{stage} {np.mean(values):.2f}" for stage, values in summary.stage_seconds.items())
        lines.append(f"  mean seconds per clip: {stages}; peak memory per process {summary.peak_memory_mb:.0f} MB")
    if summary.precision:
        lines.append(f"  backbone precision: {summary.precision}")
    lines.append("  fingerprints: " + ", ".join(f"{m}={fp}" for m, fp in summary.fingerprints.items()))
    return "\n".join(lines)
