from __future__ import annotations

import pytest

from spooler.core.errors import IllegalTransition
from spooler.core.states import FINISHED, TRANSITIONS, JobState, check_transition


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_done_is_final_and_nothing_returns_to_initializing() -> None:
    assert TRANSITIONS[JobState.DONE] == frozenset()
    assert all(JobState.INITIALIZING not in targets for targets in TRANSITIONS.values())
    assert {JobState.DONE, JobState.ERROR, JobState.CANCELLED} == FINISHED


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (JobState.DONE, JobState.QUEUED),
        (JobState.INITIALIZING, JobState.RUNNING),
        (JobState.QUEUED, JobState.DONE),
    ],
)
def test_illegal(old: JobState, new: JobState) -> None:
    with pytest.raises(IllegalTransition, match=f"{old} -> {new}"):
        check_transition("j", old, new)
