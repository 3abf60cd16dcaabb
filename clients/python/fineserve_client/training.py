"""The training area of :class:`~fineserve_client.Client` and :class:`~fineserve_client.AsyncClient`: fine-tune
and LR range test jobs, listing and cancelling; following a job to its end is in ``following.py``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
from .connection import Call, Plan, operation, paged
from .records import Job


class TrainingArea:
    @operation
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
    ) -> Plan[Job]:
        """Queue a fine-tune job and return it (state QUEUED).

        ``base`` is parsed by :func:`parse_base`; left as ``None`` it is ``"imagenet"`` for image tasks.
        Hyperparameters left as ``None`` are not sent, so the server's defaults apply; every other
        ``Hyperparameters`` field (``lr_mult``, ``weight_decay``, ``pct_start``, ``div_factor``, ``moms_max``,
        ``group_lrs``, ``stages``, ``label_smoothing``, ``mixup_alpha``, ``grad_clip``, ``early_stopping``,
        ``auto_lr``, ...) is accepted as a keyword; unknown names raise ``TypeError``. ``precision`` is ``"auto"``,
        ``"fp32"``, ``"bf16"`` or ``"fp16"``. ``resources`` is a ``Resources`` message or a mapping of its fields.
        ``request_id`` makes the call idempotent: the server answers a repeat with the job it created then, so
        only a call with one is retried after UNAVAILABLE or RESOURCE_EXHAUSTED.
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
        return Job.from_proto((yield Call("training", "CreateFineTuneJob", request, retry=bool(request_id))))

    @operation
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
    ) -> Plan[Job]:
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
        return Job.from_proto((yield Call("training", "FindLearningRate", request, retry=bool(request_id))))

    @operation
    def get_job(self, id: str) -> Plan[Job]:
        """One job by id."""
        return Job.from_proto((yield Call("training", "GetJob", training_pb2.GetJobRequest(id=id))))

    @operation
    def list_jobs(
        self, states: Iterable[str | int] | None = None, model_name: str | None = None
    ) -> Plan[list[Job]]:
        """Every job (all pages, newest first), optionally only in ``states`` or producing ``model_name``."""
        request = training_pb2.ListJobsRequest(model_name=model_name or "")
        if states is not None:
            if isinstance(states, (str, int)):
                states = [states]
            request.states.extend(enum_value(training_pb2.JobState, s, "job state") for s in states)
        return [Job.from_proto(j) for j in (yield from paged("training", "ListJobs", request, "jobs"))]

    @operation
    def cancel_job(self, id: str) -> Plan[Job]:
        """Ask a job to stop; returns the job (unchanged when it had already finished)."""
        return Job.from_proto((yield Call("training", "CancelJob", training_pb2.CancelJobRequest(id=id))))
