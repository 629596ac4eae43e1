"""``symfhir import``: a spa export → the FHIR server, streamed, batched, concurrent, resumable.

The main thread reads, maps and validates one client at a time (the same path as
``symfhir map``) and groups clients into batches; worker threads send each batch as
one transaction. At most ``2 x workers`` batches are in flight, so memory stays flat
however long the input is. Every write is conditional, so sending a batch twice
(a retry, a resumed run, two imports at once) never duplicates anything.

A batch the server refuses is retried client by client: the client it refuses goes
to the rejects file with the server's reason, the others land. A server that cannot
be reached, or refuses credentials, stops the import; the checkpoint then lets
``--resume`` carry on where it stopped.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from symfhir.errors import (
    FhirConflictError,
    FhirNotFoundError,
    FhirRequestError,
    FhirServerError,
    FhirTransportError,
)
from symfhir.importing.batch import Batch, as_updates, merge, outcome_counts
from symfhir.importing.checkpoint import Checkpoint, input_digest
from symfhir.importing.progress import Progress
from symfhir.map_job import PHOTO_COLUMNS, MapJob, MapOptions, MappedClient, MapSummary
from symfhir.mapping.fallback import adapt_bundle
from symfhir.sources.rejects import Reject, RejectsLog

# Conflicts that a second try resolves: two writers racing on one conditional create.
CONFLICT_TRIES = 3


class Capable(Protocol):
    def can(self, resource_type: str, interaction: str) -> bool: ...

    def require_system(self, interaction: str, purpose: str) -> None: ...


class TransactionClient(Protocol):
    """What the import needs of ``symfhir.fhir.FhirClient`` (tests may pass a fake)."""

    def capabilities(self) -> Capable: ...

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class ImportOptions:
    map: MapOptions
    server: str
    checkpoint: Path
    rejects: Path
    batch_size: int = 20
    workers: int = 4
    resume: bool = False
    dry_run: bool = False
    update: bool = False


@dataclass
class ImportSummary:
    records: int = 0  # rows read in this run
    skipped: int = 0  # settled by an earlier run (--resume)
    imported: int = 0
    rejected: int = 0  # mapping rejects + server rejects
    server_rejected: int = 0
    resources: int = 0  # entries sent (or, in a dry run, that would be sent)
    outcomes: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    isolated_batches: int = 0
    photos: int = 0
    photos_attached: int = 0
    photos_rejected: int = 0
    seconds: float = 0.0
    total_imported: int = 0  # over every run of this checkpoint

    def lines(self, dry_run: bool = False) -> list[str]:
        rate = self.imported / self.seconds if self.seconds else 0.0
        verb = "would be imported" if dry_run else "imported"
        lines = [
            f"{self.records} records: {self.imported} {verb}, {self.rejected} rejected"
            + (f", {self.skipped} already imported by an earlier run" if self.skipped else "")
        ]
        if self.photos:
            lines.append(
                f"{self.photos} photos: {self.photos_attached} attached, "
                f"{self.photos_rejected} rejected"
            )
        if dry_run:
            lines.append(f"{self.resources} resources would be sent; nothing was written")
        else:
            lines.append(
                f"resources: {self.outcomes['created']} created, {self.outcomes['updated']} "
                f"updated, {self.outcomes['unchanged']} unchanged "
                f"({self.resources} sent in {self.batches} transactions)"
            )
        for kind, count in sorted(self.fallbacks.items()):
            lines.append(
                f"fallback: the server cannot create {kind}; "
                f"{count} written as DocumentReference instead"
            )
        if self.isolated_batches:
            lines.append(
                f"{self.isolated_batches} transactions were refused and retried client by client"
            )
        lines.append(f"time {self.seconds:.1f} s, {rate:.1f} records/s")
        return lines


@dataclass
class BatchResult:
    batch: Batch
    imported: list[int] = field(default_factory=list)
    rejects: list[tuple[int, Reject]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    resources: int = 0
    isolated: bool = False


class Importer:
    def __init__(
        self,
        client: TransactionClient,
        options: ImportOptions,
        progress: Progress | None = None,
        sleep: Any = time.sleep,
    ) -> None:
        self.client = client
        self.options = options
        self.progress = progress
        self.sleep = sleep
        self.summary = ImportSummary()
        self.map_summary = MapSummary()
        self.can: Callable[[str], bool] = lambda _: True

    # -- the run ---------------------------------------------------------------------

    def run(self, input_path: Path) -> ImportSummary:
        """Import ``input_path``. Raises FhirServerError when the server stops the run."""
        options = self.options
        started = time.monotonic()
        caps = self.client.capabilities()
        caps.require_system("transaction", "import clients all-or-nothing")
        interaction = "update" if options.update else "create"
        self.can = lambda resource_type: caps.can(resource_type, interaction)
        key = {
            "input": input_digest(input_path),
            "server": options.server,
            "mapping": str(options.map.mapping),
            "mode": interaction,
        }
        if options.resume:
            checkpoint = Checkpoint.resume(options.checkpoint, key)
        else:
            checkpoint = Checkpoint.fresh(options.checkpoint, key)
        job = MapJob(input_path, options.map, self.map_summary)
        rejects = RejectsLog(options.rejects, job.columns, append=options.resume)
        photo_rejects = RejectsLog(
            photo_rejects_path(options.rejects), PHOTO_COLUMNS, append=options.resume
        )
        try:
            self._run(job, checkpoint, rejects, photo_rejects)
        finally:
            self._drain_photo_rejects(photo_rejects)
            rejects.close()
            photo_rejects.close()
            self.summary.seconds = time.monotonic() - started
            self.summary.photos = self.map_summary.photos
            self.summary.total_imported = checkpoint.imported
        return self.summary

    def _run(
        self,
        job: MapJob,
        checkpoint: Checkpoint,
        rejects: RejectsLog,
        photo_rejects: RejectsLog,
    ) -> None:
        options = self.options
        summary = self.summary
        pending: set[Future[BatchResult]] = set()
        batch = Batch()
        first = True
        failure: FhirServerError | None = None
        with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="import") as pool:
            for number, item in job.clients(skip=checkpoint.is_settled):
                summary.records += 1
                self._drain_photo_rejects(photo_rejects)
                if item is None:
                    summary.skipped += 1
                elif isinstance(item, Reject):
                    rejects.write(item)
                    summary.rejected += 1
                else:
                    batch.clients.append((number, self._prepare(item)))
                    summary.photos_attached += item.photos_attached
                if len(batch) >= options.batch_size:
                    if options.dry_run:
                        self._dry(batch)
                    elif first:
                        # The first batch alone creates the shared resources (the spa's
                        # Organization), so concurrent batches only ever find them.
                        self._collect(self._send(batch), checkpoint, rejects)
                        first = False
                    else:
                        pending.add(pool.submit(self._send, batch))
                    batch = Batch()
                while len(pending) >= 2 * options.workers or (
                    failure is None and _any_done(pending)
                ):
                    failure = self._collect_some(pending, checkpoint, rejects) or failure
                if failure is not None:
                    break
                self._show(checkpoint)
            if failure is None and len(batch):
                if options.dry_run:
                    self._dry(batch)
                else:
                    pending.add(pool.submit(self._send, batch))
            while pending:
                failure = self._collect_some(pending, checkpoint, rejects) or failure
        if failure is not None:
            raise failure
        if not options.dry_run:
            checkpoint.complete = True
            checkpoint.save()
        self._show(checkpoint, force=True)

    def _prepare(self, item: MappedClient) -> MappedClient:
        bundle, fallbacks = adapt_bundle(item.bundle, self.can)
        self.summary.fallbacks.update(fallbacks)
        if self.options.update:
            bundle = as_updates(bundle)
        if bundle is item.bundle:
            return item
        return MappedClient(item.accepted, bundle, b"", item.photos_attached)

    def _dry(self, batch: Batch) -> None:
        self.summary.imported += len(batch)
        self.summary.resources += len(merge([c.bundle for _, c in batch.clients])["entry"])

    # -- results, in the main thread ---------------------------------------------------

    def _collect_some(
        self, pending: set[Future[BatchResult]], checkpoint: Checkpoint, rejects: RejectsLog
    ) -> FhirServerError | None:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        failure = None
        for future in done:
            pending.remove(future)
            try:
                self._collect(future.result(), checkpoint, rejects)
            except FhirServerError as err:
                failure = failure or err
        return failure

    def _collect(self, result: BatchResult, checkpoint: Checkpoint, rejects: RejectsLog) -> None:
        summary = self.summary
        for _, reject in result.rejects:
            rejects.write(reject)  # on disk before the record counts as settled
        summary.imported += len(result.imported)
        summary.rejected += len(result.rejects)
        summary.server_rejected += len(result.rejects)
        summary.outcomes.update(result.outcomes)
        summary.resources += result.resources
        summary.batches += 1
        summary.isolated_batches += result.isolated
        checkpoint.settle(
            result.batch.numbers, len(result.imported), len(result.rejects), result.outcomes
        )
        checkpoint.save()

    def _show(self, checkpoint: Checkpoint, force: bool = False) -> None:
        if self.progress is None:
            return
        s = self.summary
        done = s.skipped + s.imported + s.rejected
        if force:
            self.progress.finish(done, s.imported, s.rejected)
        else:
            self.progress.update(done, s.imported, s.rejected)

    def _drain_photo_rejects(self, photo_rejects: RejectsLog) -> None:
        for reject in self.map_summary.photo_rejects:
            photo_rejects.write(reject)
        self.summary.photos_rejected += len(self.map_summary.photo_rejects)
        self.map_summary.photo_rejects.clear()

    # -- sending, in worker threads ----------------------------------------------------

    def _send(self, batch: Batch) -> BatchResult:
        result = BatchResult(batch)
        bundle = merge([c.bundle for _, c in batch.clients])
        try:
            result.outcomes = self._transaction(bundle)
            result.resources = len(bundle["entry"])
            result.imported = batch.numbers
            return result
        except FhirServerError as err:
            if not _record_level(err):
                raise
            if len(batch) == 1:
                number, client = batch.clients[0]
                result.rejects.append((number, _server_reject(client, err)))
                return result
        result.isolated = True
        server_errors = []
        for number, client in batch.clients:
            try:
                counts = self._transaction(client.bundle)
            except FhirServerError as err:
                if not _record_level(err):
                    raise
                if err.status is not None and err.status >= 500:
                    server_errors.append(err)
                result.rejects.append((number, _server_reject(client, err)))
                continue
            result.imported.append(number)
            result.outcomes.update(counts)
            result.resources += len(client.bundle["entry"])
        if len(server_errors) == len(batch):
            # Every client alone fails with a server error: the server is broken, not the data.
            raise server_errors[0]
        return result

    def _transaction(self, bundle: dict[str, Any]) -> Counter[str]:
        for attempt in range(1, CONFLICT_TRIES + 1):
            try:
                response = self.client.transaction(bundle)
                break
            except FhirConflictError:
                if attempt == CONFLICT_TRIES:
                    raise
                self.sleep(random.uniform(0.05, 0.3) * attempt)  # noqa: S311 - jitter only
        try:
            return outcome_counts(bundle, response)
        except ValueError as err:
            raise FhirTransportError("transaction", str(err), status=None) from None


def _any_done(pending: set[Future[BatchResult]]) -> bool:
    return any(f.done() for f in pending)


def _record_level(err: FhirServerError) -> bool:
    """Could this refusal be about one record (so isolate it) rather than the server?"""
    if isinstance(err, FhirRequestError | FhirConflictError | FhirNotFoundError):
        return True
    return isinstance(err, FhirTransportError) and err.status == 500


def _server_reject(client: MappedClient, err: FhirServerError) -> Reject:
    accepted = client.accepted
    field_name = err.issues[0][3] if err.issues and err.issues[0][3] else "(server)"
    reason = f"the FHIR server refused it: {err.reason}"
    return Reject(accepted.record, field_name, reason, accepted.row)


def photo_rejects_path(rejects_path: Path) -> Path:
    return rejects_path.with_name(f"{rejects_path.stem}-photos{rejects_path.suffix}")
