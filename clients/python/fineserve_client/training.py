"""The training area of :class:`~fineserve_client.Client`: fine-tune and LR range test jobs, listing,
cancelling, and following a job to its end across broken streams."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fineserve.v1 import common_pb2, training_pb2

from .arguments import (
    DEFAULT_ARCH,
    DEFAULT_TASK,
    enum_value,
    hyperparameters_message,
    job_arch,
    job_base,
    job_task,
    set_options,
    trains_from_scratch,
)
from .connection import Connection, rpc_method
from .errors import DeadlineExceeded, Unavailable
from .jobs import check_job, is_terminal
from .progress import ProgressBar

_FIRST_RETRY_S = 0.25
_MAX_RETRY_S = 5.0


class TrainingMixin(Connection):
    @rpc_method
    def create_fine_tune_job(
        self,
        dataset_id: str,
        model_name: str,
        arch: str = DEFAULT_ARCH,
        task: str | int = DEFAULT_TASK,
        base: str | training_pb2.BaseModel | None = None,
        epochs: int | None = None,
        freeze_epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        image_size: int | None = None,
        precision: str | int | None = None,
        request_id: str | None = None,
        *,
        resources: common_pb2.Resources | Mapping[str, Any] | None = None,
        collab: training_pb2.CollabOptions | Mapping[str, Any] | None = None,
        tabular: training_pb2.TabularOptions | Mapping[str, Any] | None = None,
        text: training_pb2.TextOptions | Mapping[str, Any] | None = None,
        **more_hyperparameters: Any,
    ) -> training_pb2.Job:
        """Queue a fine-tune job and return it (state QUEUED).

        ``base`` is parsed by :func:`parse_base`; left as ``None`` it is ``"imagenet"`` for image tasks.
        Hyperparameters left as ``None`` are not sent, so the server's defaults apply; every other
        ``Hyperparameters`` field (``lr_mult``, ``weight_decay``, ``pct_start``, ``div_factor``, ``moms_max``,
        ``group_lrs``, ``stages``, ``label_smoothing``, ``mixup_alpha``, ``grad_clip``, ``early_stopping``,
        ``auto_lr``, ...) is accepted as a keyword; unknown names raise ``TypeError``. ``precision`` is ``"auto"``,
        ``"fp32"``, ``"bf16"`` or ``"fp16"``. ``resources`` is a ``Resources`` message or a mapping of its fields.
        ``request_id`` makes the call idempotent.
        For ``task="collaborative_filtering"`` (``arch`` ``"dot"`` or ``"neural"``) and ``task="tabular"``, ``base``
        is not sent and ``collab`` / ``tabular`` carry the options (``CollabOptions`` / ``TabularOptions`` or a
        mapping of their fields, e.g. ``tabular={"target": "salary", "categorical": ["workclass"]}``).
        For ``task="language_model"`` and ``"text_classification"``, ``text`` carries the AWD-LSTM settings
        (``TextOptions`` or a mapping, e.g. ``text={"emb_size": 32, "bptt": 30}``) and the default ``arch`` is
        not sent (the service picks ``awd_lstm``); ``base`` is ``"none"`` or ``"model:LM_NAME"``, and must be given.
        """
        hyper = hyperparameters_message(epochs=epochs, freeze_epochs=freeze_epochs, lr=lr, batch_size=batch_size,
                                        image_size=image_size, precision=precision, **more_hyperparameters)
        task_id, job = job_task(task)
        request = training_pb2.CreateFineTuneJobRequest(
            task=task_id,
            model_name=model_name,
            arch=job_arch(job, arch),
            dataset_id=dataset_id,
            hyperparameters=hyper,
            request_id=request_id or "",
        )
        if not trains_from_scratch(job) and (start := job_base(job, base)) is not None:
            request.base.CopyFrom(start)
        set_options(request, collab=collab, tabular=tabular, text=text, resources=resources)
        return self._call(self._training.CreateFineTuneJob, request)

    @rpc_method
    def find_learning_rate(
        self,
        dataset_id: str,
        arch: str = DEFAULT_ARCH,
        task: str | int = DEFAULT_TASK,
        base: str | training_pb2.BaseModel | None = None,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        num_batches: int = 100,
        freeze_to: int | None = None,
        request_id: str | None = None,
        *,
        resources: common_pb2.Resources | Mapping[str, Any] | None = None,
        text: training_pb2.TextOptions | Mapping[str, Any] | None = None,
        **hyperparameters: Any,
    ) -> training_pb2.Job:
        """Queue an LR range test (a job); ``wait`` for it, then read ``job.result.lr_finder`` or plot it with
        :func:`fineserve_client.plots.plot_lr_finder`. Text tasks take ``text`` and ``base`` as
        :meth:`create_fine_tune_job` does."""
        task_id, job = job_task(task)
        request = training_pb2.FindLearningRateRequest(
            task=task_id,
            arch=job_arch(job, arch),
            base=job_base(job, base),
            dataset_id=dataset_id,
            hyperparameters=hyperparameters_message(**hyperparameters),
            start_lr=start_lr,
            end_lr=end_lr,
            num_batches=num_batches,
            request_id=request_id or "",
        )
        if freeze_to is not None:
            request.freeze_to = freeze_to
        set_options(request, text=text, resources=resources)
        return self._call(self._training.FindLearningRate, request)

    @rpc_method
    def get_job(self, id: str) -> training_pb2.Job:
        """One job by id."""
        return self._call(self._training.GetJob, training_pb2.GetJobRequest(id=id))

    @rpc_method
    def list_jobs(
        self, states: Iterable[str | int] | None = None, model_name: str | None = None
    ) -> list[training_pb2.Job]:
        """Every job (all pages, newest first), optionally only in ``states`` or producing ``model_name``."""
        request = training_pb2.ListJobsRequest(model_name=model_name or "")
        if states is not None:
            if isinstance(states, (str, int)):
                states = [states]
            request.states.extend(enum_value(training_pb2.JobState, s, "job state") for s in states)
        return self._pages(self._training.ListJobs, request, "jobs")

    @rpc_method
    def cancel_job(self, id: str) -> training_pb2.Job:
        """Ask a job to stop; returns the job (unchanged when it had already finished)."""
        return self._call(self._training.CancelJob, training_pb2.CancelJobRequest(id=id))

    @rpc_method
    def watch_job(
        self, id: str, from_sequence: int = 0, *, timeout: float | None = None
    ) -> Iterator[training_pb2.JobEvent]:
        """Yield the job's events from ``from_sequence`` on (0: from the first); the iterator ends after
        the event that puts the job in a terminal state. No deadline unless ``timeout`` is given."""
        call = self._training.WatchJob(
            training_pb2.WatchJobRequest(id=id, from_sequence=from_sequence),
            timeout=timeout,
            metadata=self._metadata,
        )
        try:
            yield from call
        finally:
            call.cancel()  # a no-op when the stream has ended; stops it when the caller stopped early

    @rpc_method
    def wait(
        self,
        id: str,
        progress: bool | ProgressBar = True,
        timeout: float | None = None,
        *,
        check: bool = False,
        max_reconnects: int = 5,
    ) -> training_pb2.Job:
        """Follow the job until it is SUCCEEDED, FAILED or CANCELLED and return the final ``Job``.

        The final job is returned whatever its state: a failed job is an outcome, not a failed call. Check
        it with :mod:`fineserve_client.jobs` (``succeeded(job)``, ``check_job(job)``) or pass
        ``check=True`` to raise :class:`~fineserve_client.errors.JobFailed` for FAILED and CANCELLED.

        ``progress`` shows a progress bar on stderr. When the event stream breaks with UNAVAILABLE the
        watch resumes from the event after the last one seen, up to ``max_reconnects`` times in a row.
        ``timeout`` (seconds) bounds the whole wait (``DeadlineExceeded`` when it runs out).
        """
        bar = progress if isinstance(progress, ProgressBar) else ProgressBar(enabled=bool(progress))
        deadline = None if timeout is None else time.monotonic() + timeout
        next_sequence = 0
        failures = 0
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded(f"job {id} did not finish within {timeout} s")
                try:
                    for event in self.watch_job(id, next_sequence, timeout=remaining):
                        next_sequence = event.sequence + 1
                        failures = 0
                        bar.event(event)
                        if event.WhichOneof("event") == "state" and is_terminal(event.state.state):
                            break
                    else:
                        # The stream ended without a terminal event: trust the job record.
                        if not is_terminal(self.get_job(id)):
                            raise Unavailable(f"the event stream of job {id} ended before the job finished")
                    break
                except Unavailable:
                    failures += 1
                    if failures > max_reconnects:
                        raise
                    delay = min(_FIRST_RETRY_S * 2 ** (failures - 1), _MAX_RETRY_S)
                    if deadline is not None:
                        delay = min(delay, max(deadline - time.monotonic(), 0.0))
                    time.sleep(delay)
        finally:
            bar.close()
        job = self.get_job(id)
        return check_job(job) if check else job

    def fine_tune(
        self,
        dataset_id: str,
        model_name: str,
        *,
        progress: bool | ProgressBar = True,
        timeout: float | None = None,
        check: bool = False,
        **job_options: Any,
    ) -> training_pb2.Job:
        """:meth:`create_fine_tune_job` then :meth:`wait`; returns the final ``Job`` (see :meth:`wait`)."""
        job = self.create_fine_tune_job(dataset_id, model_name, **job_options)
        return self.wait(job.id, progress=progress, timeout=timeout, check=check)
