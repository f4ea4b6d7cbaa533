"""Admission: claimed job files become QUEUED jobs with rendered experiment files, or ERROR.

A batch of claimed files goes through three steps, each durable before the next:

1. one transaction records every file as an INITIALIZING job (the claim is now known);
2. each file is checked (job id, strict JSON, schema, semantics), its experiments rendered
   and written to ``jobs/<job_id>/``, and the file itself filed away: to
   ``jobs/<job_id>/job.json`` when accepted, to ``rejected/<job_id>.json`` when not;
3. one transaction moves every job to QUEUED or ERROR; then the status files are rendered.

After a crash, :meth:`Admission.recover` finishes what step 1 started: the work of step 2
is repeated (it is idempotent) for every job still INITIALIZING.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import JobRejected, LabspoolError
from .fsutil import Batch, read_regular_file
from .jobid import parse_job_file_name
from .jobs import Jobs
from .logs import for_job
from .model import Job
from .render import Renderer
from .settings import Settings
from .states import JobState
from .store import JobRecord
from .validation import JobValidator

__all__ = ["Admission", "Verdict"]

log = logging.getLogger(__name__)


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

    # -- entry points -----------------------------------------------------------------

    def admit(self, claimed: list[Path]) -> list[JobRecord]:
        """Admit freshly claimed files (all in the claimed folder), oldest first."""
        if not claimed:
            return []
        pending: list[tuple[JobRecord, str | None]] = []
        with self.jobs.store.transaction() as tx:
            for path in claimed:
                name = path.name
                reason: str | None = None
                try:
                    parsed = parse_job_file_name(name)
                    job_id: str | None = parsed.job_id
                    submitter = parsed.user
                except JobRejected as exc:
                    job_id, submitter, reason = None, None, f"job id: {exc}"
                if job_id is not None:
                    earlier = tx.get(job_id)
                    if earlier is not None:
                        reason = (
                            f"job id: {job_id} is already used by an earlier job (submitted "
                            f"as {earlier.source_name}); this file was not run and the earlier "
                            "job is untouched. Submit it again under a new id"
                        )
                        job_id = None
                record = tx.add_job(
                    job_id=job_id,
                    backend=self.validator.backend.name,
                    source_name=name,
                    claim_name=name,
                    submitter=submitter,
                )
                pending.append((record, reason))
        return self._decide(pending)

    def recover(self) -> list[JobRecord]:
        """Finish jobs left INITIALIZING by a crash, then admit orphaned claimed files."""
        stuck: list[tuple[JobRecord, str | None]] = [
            (r, None) for r in self.jobs.read.jobs(JobState.INITIALIZING)
        ]
        done = self._decide(stuck) if stuck else []
        known = {r.claim_name for r, _ in stuck}
        orphans = sorted(
            (p for p in self.folders.claimed.iterdir() if p.name not in known),
            key=lambda p: (p.lstat().st_ctime_ns, p.name),
        )
        if orphans:
            log.info("recovering %d claimed file(s) not yet recorded", len(orphans))
        return done + self.admit(orphans)

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
            for verdict in verdicts:
                record = verdict.record
                tx.clear_claim(record.job_id)
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
        accepted_path = self.folders.jobs / record.job_id / "job.json"
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
                reason = f"internal error while checking the job ({type(exc).__name__}); reported"
            else:
                self._file_accepted(record, source, sources, batch)
                return Verdict(record, job=job)
        self._file(source, self.folders.rejected / f"{record.job_id}.json", batch)
        return Verdict(record, error=reason)

    def _locate(self, record: JobRecord) -> Path | None:
        places = [
            self.folders.jobs / record.job_id / "job.json",
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
        folder = self.folders.jobs / record.job_id
        folder.mkdir(exist_ok=True)
        for name, text in sources.items():
            batch.write(folder / f"{name}.py", text.encode())
        self._file(source, folder / "job.json", batch)

    @staticmethod
    def _file(source: Path, target: Path, batch: Batch) -> None:
        if source == target:
            return
        candidate, n = target, 1
        while candidate.exists() or candidate.is_symlink():
            candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
            n += 1
        batch.move(source, candidate)
