from __future__ import annotations

import threading

from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job
from tests.fakes import RecordingLab


def test_run_watches_the_folder_until_asked_to_stop(tree: Settings) -> None:
    lab = RecordingLab()
    spooler = Spooler(tree, lab=lab)
    ready = threading.Event()
    admitted = threading.Event()
    admit = spooler.admission.admit

    def admit_and_tell(claimed):  # type: ignore[no-untyped-def]
        result = admit(claimed)
        if any(r.job_id == "late" for r in result):
            admitted.set()
        return result

    spooler.admission.admit = admit_and_tell  # type: ignore[method-assign]
    thread = threading.Thread(target=spooler.run, kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(30)
        drop(tree, "late.json", good_job())
        assert admitted.wait(30), "a job renamed into the folder is picked up by the watcher"
        assert spooler.watcher_alive()
    finally:
        spooler.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    assert spooler.jobs.read.require("late").state is JobState.RUNNING
    spooler.close()
    assert not spooler.watcher_alive()
