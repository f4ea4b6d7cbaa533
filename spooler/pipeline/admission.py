"""Admission: claimed job files become QUEUED jobs with rendered experiment files, or ERROR.

A batch of claimed files goes through three steps, each durable before the next:

1. one transaction records every file as an INITIALIZING job (the claim is now known);
2. each file is checked (job id, strict JSON, schema, semantics), its experiments rendered
   and written to ``jobs/<job_id>/``, and the file itself filed away: to
   ``jobs/<job_id>/job.json`` when accepted, to ``rejected/<job_id>.json`` when not;
3. one transaction moves every job to QUEUED or ERROR; then the status files are rendered.

After a crash, :meth:`Admission.recover` finishes what step 1 started: the work of step 2
is repeated (it is idempotent) for every job still INITIALIZING, one job at a time, so that
a file that kills the process is found alone. Step 1 records each job's start in the
:class:`~spooler.core.items.DeathCounter` and step 3 clears it: a job file on which the spooler
died ``limits.item_deaths_max`` times ends ``ERROR`` (its file kept in ``rejected/``)
instead of being checked again. An unexpected exception while admitting a batch has each of
its jobs tried alone; one that fails alone ends ``ERROR`` with ``internal error while
admitting the job: <type>: <message>``. Either way the spooler goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from spooler.core.errors import JobRejected, LabspoolError, describe_exception
from spooler.core.fsutil import Batch, exists_in, free_name, read_regular_file
from spooler.core.health import from_row
from spooler.core.intake import Claim
from spooler.core.items import DeathCounter, Quarantine
from spooler.core.jobid import is_valid_job_id, parse_job_file_name
from spooler.core.jobs import Jobs
from spooler.core.logs import for_job
from spooler.core.model import Job
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store import JobRecord, Reader, Transaction
from spooler.pipeline.fairshare import fair_key
from spooler.pipeline.render import Renderer
from spooler.pipeline.validation import JobValidator

__all__ = ["Admission", "Verdict"]

log = logging.getLogger(__name__)

KIND = "job file"  # the DeathCounter's kind of item


@dataclass(frozen=True)
class Verdict:
    record: JobRecord
    job: Job | None = None
    error: str | None = None


class Admission:
    def __init__(
        self, settings: Settings, jobs: Jobs, validator: JobValidator, renderer: Renderer
    ) -> None:
        self.settings = settings
        self.folders = settings.folders
        self.jobs = jobs
        self.validator = validator
        self.renderer = renderer
        self.deaths = DeathCounter(jobs.store, "spooler", settings.limits.item_deaths_max)
        self.quarantine = Quarantine(self.folders.quarantine, "spooler", store=jobs.store)

    # -- entry points -----------------------------------------------------------------

    def admit(self, claimed: list[Claim]) -> list[JobRecord]:
        """Admit freshly claimed files (all in the claimed folder), oldest first."""
        if not claimed:
            return []
        pending: list[tuple[JobRecord, str | None]] = []
        with self.jobs.store.transaction() as tx:
            for claim in claimed:
                try:
                    with tx.savepoint():
                        pending.append(self._record(tx, claim))
                except Exception as exc:  # never lose the batch for one file
                    self._quarantine_unrecorded(claim, exc)
        # (the transaction's touched jobs are published with the verdicts below)
        try:
            return self._decide(pending)
        except Exception:
            log.exception(
                "admitting a batch of %d job file(s) failed; each is now tried alone", len(pending)
            )
            return self.recover()

    def recover(self) -> list[JobRecord]:
        """Finish jobs left INITIALIZING (a crash, a failed batch), one at a time, then admit
        orphaned claimed files."""
        stuck = self.jobs.read.jobs(JobState.INITIALIZING)
        done = [self._admit_alone(r) for r in stuck]
        known = {r.claim_name for r in stuck}
        orphans = sorted(
            (p for p in self.folders.claimed.iterdir() if p.name not in known),
            key=lambda p: (p.lstat().st_ctime_ns, p.name),
        )
        if orphans:
            log.info("recovering %d claimed file(s) not yet recorded", len(orphans))
        return done + self.admit([Claim(p, p.name) for p in orphans])

    def _record(self, tx: Transaction, claim: Claim) -> tuple[JobRecord, str | None]:
        """Step 1 for one file: an INITIALIZING job, and its start counted."""
        job_id, submitter, reason = self._job_id(tx, claim.name)
        record = tx.add_job(
            job_id=job_id,
            backend=self.validator.backend.name,
            source_name=claim.shown,
            claim_name=claim.path.name,
            submitter=submitter,
        )
        self.deaths.begin(tx, KIND, record.job_id)
        return record, reason

    @staticmethod
    def _job_id(view: Reader, name: str) -> tuple[str | None, str | None, str | None]:
        """(job id, submitter, reason to reject) from a file name; no id when it is unusable."""
        try:
            parsed = parse_job_file_name(name)
        except JobRejected as exc:
            return None, None, f"job id: {exc}"
        earlier = view.get(parsed.job_id)
        if earlier is not None:
            return (
                None,
                None,
                f"job id: {parsed.job_id} is already used by an earlier job (submitted as "
                f"{earlier.source_name}); this file was not run and the earlier job is "
                "untouched. Submit it again under a new id",
            )
        return parsed.job_id, parsed.user, None

    def _admit_alone(self, record: JobRecord) -> JobRecord:
        """Steps 2 and 3 for one job left INITIALIZING."""
        jlog = for_job(log, record.job_id)
        reason: str | None = None
        if not is_valid_job_id(record.job_id):  # the reason was not recorded: find it again
            reason = self._job_id(self.jobs.read, record.source_name)[2] or (
                "job id: the file name gave no usable job id"
            )
        deaths = self.deaths.poisoned(self.jobs.read, KIND, record.job_id)
        if deaths is not None:
            jlog.error("the spooler died %d times while checking this job file; given up", deaths)
            return self._give_up(
                record,
                f"the spooler died {deaths} times while checking this job file (it may crash "
                "the process); it was given up without another try and is kept in rejected/",
            )
        self.deaths.started(KIND, record.job_id)
        try:
            return self._decide([(record, reason)])[0]
        except Exception as exc:
            jlog.exception("internal error while admitting the job")
            return self._give_up(
                record, f"internal error while admitting the job: {describe_exception(exc)}"
            )

    def _give_up(self, record: JobRecord, message: str) -> JobRecord:
        """End an INITIALIZING job ERROR with *message*; its file goes to rejected/."""
        source = self._locate(record)
        if source is not None and source.parent != self.folders.rejected:
            batch = Batch()
            self._file(source, self.folders.rejected / f"{record.job_id}.json", batch)
            batch.commit()
        with self.jobs.change() as tx:
            tx.clear_claim(record.job_id)
            self.deaths.end(tx, KIND, record.job_id)
            return tx.transition(
                record.job_id,
                JobState.ERROR,
                note="Rejected: the job could not be checked (see error_message)",
                error_message=message,
            )

    def _quarantine_unrecorded(self, claim: Claim, exc: Exception) -> None:
        """A claimed file that could not even be recorded as a job: kept with the reason."""
        log.exception("internal error while recording the job file %s", claim.shown)
        self.quarantine.put(
            claim.path,
            f"internal error while recording the job file: {describe_exception(exc)}",
            extra={"submitted_as": claim.shown},
        )

    # -- the work ---------------------------------------------------------------------

    def _decide(self, pending: list[tuple[JobRecord, str | None]]) -> list[JobRecord]:
        batch = Batch()
        try:
            verdicts = [self._check(record, reason, batch) for record, reason in pending]
            batch.commit()  # experiment files and job files durable and in place, then record it
        except BaseException:
            batch.abort()
            raise
        finished: list[JobRecord] = []
        with self.jobs.change() as tx:
            row = tx.health()  # a machine known to be down: a new job says why it waits
            machine = None if row is None else from_row(row, row.last_check)
            for verdict in verdicts:
                record = verdict.record
                tx.clear_claim(record.job_id)
                self.deaths.end(tx, KIND, record.job_id)
                if verdict.job is None:
                    message = verdict.error or "rejected"
                    finished.append(
                        tx.transition(
                            record.job_id,
                            JobState.ERROR,
                            note="Rejected: the job failed a check (see error_message)",
                            error_message=message,
                        )
                    )
                    for_job(log, record.job_id).warning("rejected: %s", message)
                    continue
                job = verdict.job
                tx.set_counts(
                    record.job_id,
                    experiments=len(job.experiments),
                    shots_requested=job.total_shots,
                )
                for experiment in job.experiments:
                    tx.add_experiment(
                        record.job_id, record.attempt, experiment.name, experiment.shots
                    )
                plural = "s" if len(job.experiments) != 1 else ""
                queued = tx.transition(
                    record.job_id,
                    JobState.QUEUED,
                    note=(
                        f"Passed json sanity check; Rendered {len(job.experiments)} experiment "
                        f"file{plural}; queued"
                    ),
                )
                if self.settings.queue.policy == "fair":
                    key = fair_key(tx, record.submitter, record.job_id)
                    if key is not None:
                        tx.set_queue_key(record.job_id, key)
                if machine is not None and not machine.operational:
                    tx.note(record.job_id, machine.waiting_note)  # why it will wait
                finished.append(queued)
                for_job(log, record.job_id).info(
                    "queued: %d experiment(s), %d shot(s)", len(job.experiments), job.total_shots
                )
        return finished

    def _check(self, record: JobRecord, reason: str | None, batch: Batch) -> Verdict:
        """Validate and render one job and file its job file; never raises for bad input."""
        source = self._locate(record)
        if source is None:
            return Verdict(record, error="the job file was lost before it could be checked")
        accepted_path = self.folders.accepted_job(record.job_id)
        if reason is None and source != accepted_path and accepted_path.exists():
            reason = (
                f"job id: the folder {accepted_path.parent} exists already (left from an earlier "
                "installation?); submit the job under a new id"
            )
        if reason is None:
            try:
                job = self.validator.validate_bytes(
                    read_regular_file(source, self.settings.limits.job_file_max_bytes)
                )
                sources = {e.name: self.renderer.render(e) for e in job.experiments}
            except JobRejected as exc:
                reason = str(exc)
            except OSError as exc:
                reason = f"cannot read the job file: {exc.strerror}"
            except LabspoolError:
                raise  # a configuration problem (e.g. the header is missing): stop, don't reject
            except Exception as exc:  # a bug met by hostile input must not stop the daemon
                for_job(log, record.job_id).exception("internal error while checking the job")
                reason = f"internal error while checking the job: {describe_exception(exc)}"
            else:
                self._file_accepted(record, source, sources, batch)
                return Verdict(record, job=job)
        self._file(source, self.folders.rejected / f"{record.job_id}.json", batch)
        return Verdict(record, error=reason)

    def _locate(self, record: JobRecord) -> Path | None:
        places = [
            self.folders.accepted_job(record.job_id),
            self.folders.rejected / f"{record.job_id}.json",
        ]
        if record.claim_name is not None:
            places.insert(0, self.folders.claimed / record.claim_name)
        for place in places:
            if place.exists() or place.is_symlink():
                return place
        return None

    def _file_accepted(
        self, record: JobRecord, source: Path, sources: dict[str, str], batch: Batch
    ) -> None:
        accepted = self.folders.accepted_job(record.job_id)
        folder = accepted.parent
        folder.mkdir(exist_ok=True)
        for name, text in sources.items():
            batch.write(folder / f"{name}.py", text.encode())
        self._file(source, accepted, batch)

    @staticmethod
    def _file(source: Path, target: Path, batch: Batch) -> None:
        if source == target:
            return
        batch.move(source, target.with_name(free_name(target.name, exists_in(target.parent))))
