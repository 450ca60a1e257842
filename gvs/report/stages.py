"""The stages a report is made in, each with what a person watching it is told (the one home of both).

``ReportMaker.explain`` calls ``progress(stage)`` as each stage starts and times it under that name in
``Report.seconds``; ``gvs serve`` shows the stage's label on the job page (gvs.serve.jobs.STAGE_LABELS adds its own
stages around these). A stage may make one section or several, and its name is not always a section's key:
"sections" is the stage of the key moments (occlusion), whose section key is also "sections".
"""

from __future__ import annotations

REPORT_STAGES: dict[str, str] = {
    "sections": "report: key moments",
    "lime": "report: LIME superpixels",
    "pixels": "report: pixel saliency",
    "people": "report: people and faces",
    "persons": "report: the people in the video",
    "audio": "report: sounds",
    "modalities": "report: each modality's share",
    "attention": "report: what each modality attended to",
}
