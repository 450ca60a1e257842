"""`gvs report`: one self-contained HTML page per video showing which moments, regions, people and sounds drove
the verdict.

window.py: the window a report explains (its features, raw frames/keypoints/faces/audio and a scorer that
re-runs the bundle's models on changed copies); sections.py: what each page section holds (figures, tables,
numbers); faithfulness.py: deletion curves. One module per section computes it from an ExplainedWindow.
"""
