"""Task names live in `app.jobs`; the worker entry point registers exactly those names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import celeryconfig
from app import jobs

ROOT = Path(__file__).resolve().parents[2]

LIST_REGISTERED = """
import json
from tasks.worker import celery_app
celery_app.loader.import_default_modules()
print(json.dumps(sorted(name for name in celery_app.tasks if not name.startswith("celery."))))
"""


def test_the_worker_entry_point_registers_every_job_and_nothing_else():
    # A fresh interpreter, as `celery -A tasks.worker worker` (the Procfile) starts one.
    result = subprocess.run(
        [sys.executable, "-c", LIST_REGISTERED],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    registered = json.loads(result.stdout.strip().splitlines()[-1])
    assert registered == sorted(jobs.ALL)


def test_every_beat_entry_names_a_job():
    scheduled = {entry["task"] for entry in celeryconfig.beat_schedule.values()}
    assert scheduled <= jobs.ALL
