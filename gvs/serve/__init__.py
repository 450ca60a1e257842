"""`gvs serve`: a small web app over `gvs predict` and `gvs report`.

Upload a video (or pick a sample clip), watch its job's progress, read the verdict, the timeline and the report.

settings.py  what a server is configured with (limits, folders, workers)
errors.py    the error a request can cause, with its HTTP status
storage.py   the job folders: random ids, the fixed file names inside one, cleanup by age and size
uploads.py   a multipart upload streamed to disk with the size checked while it streams
media.py     a file checked by decoding it (not by its name), and the sample clips
jobs.py      job state, the bounded queue and the worker threads (models loaded once per worker)
runner.py    what a worker does with one job: predict, show the verdict, explain, write the files
pages.py     the HTML pages (Jinja2, the look of `gvs report`)
app.py       the FastAPI app: pages, the JSON API and file serving
cli.py       the `gvs serve` command (uvicorn)
"""
