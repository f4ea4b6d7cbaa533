"""Analysis routines that fail, for the result daemon's tests (not shipped)."""

from __future__ import annotations

from typing import Any


def explode(run: Any) -> dict[str, Any]:
    raise RuntimeError("the camera saw nothing")


def die_on_poison(run: Any) -> dict[str, Any]:
    """Ends its own process on shot 1 of the job ``poison`` (a library that crashes on one
    file, as a segfault would): the result daemon must give that shot up, not loop."""
    import os

    shot_globals = run.get_globals()
    if shot_globals.get("labspool_job_id") == "poison" and int(shot_globals["labspool_shot"]) == 1:
        os._exit(3)
    return {}


def parity(run: Any) -> dict[str, Any]:
    """A second routine, for reprocessing with routines the shots were not analysed with:
    the parity of what ``count_atoms`` counted (lyse gives one routine another's results)."""
    return {"parity": int(run.get_result("count_atoms", "atoms")) % 2}


def linger(run: Any) -> dict[str, Any]:
    """Takes ``$LABSPOOL_TEST_LINGER_S`` (default 1.5 s) a shot, with a file named after its
    process's pid in ``$LABSPOOL_TEST_BUSY`` meanwhile: a test kills a worker mid-task so."""
    import os
    import time
    from pathlib import Path

    busy = os.environ.get("LABSPOOL_TEST_BUSY")
    marker = Path(busy) / str(os.getpid()) if busy else None
    if marker is not None:
        marker.write_text(run.h5_path)
    time.sleep(float(os.environ.get("LABSPOOL_TEST_LINGER_S", "1.5")))
    if marker is not None:
        marker.unlink(missing_ok=True)
    return {"lingered": 1}


# -- multi-shot routines (result.multishot_routines) ---------------------------------------


def summarise(job: Any) -> dict[str, bytes]:
    """What the routine was given, as JSON: the tests check the input's contract."""
    import json

    frame = job.frame
    summary = {
        "job_id": job.job_id,
        "backend": job.backend,
        "finished_at": job.finished_at,
        "experiments": list(job.frames),
        "rows": {name: len(f) for name, f in job.frames.items()},
        "experiment_column": [str(v) for v in frame["experiment"]],
        "memory": job.memory,
        "frame_memory": {
            name: [str(v) for v in f[("count_atoms", "memory")]] for name, f in job.frames.items()
        },
    }
    return {"summary.json": json.dumps(summary).encode()}


def fail_to_fit(job: Any) -> dict[str, bytes]:
    raise RuntimeError("the fit did not converge")


def escape_the_store(job: Any) -> dict[str, bytes]:
    """A name that would leave the job's store folder, beside a good one."""
    return {"fine.txt": b"fine", "../escaped.txt": b"out"}


def overwrite_a_csv(job: Any) -> dict[str, bytes]:
    return {"experiment_0.csv": b"not lyse's"}


def text_not_bytes(job: Any) -> dict[str, Any]:
    return {"notes.txt": "a str"}
