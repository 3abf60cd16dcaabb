"""The job commands: train, lr-find, plot, watch, jobs, job, cancel."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from fineserve.v1 import training_pb2
from fineserve_common.tasks import COLLABORATIVE_FILTERING, TABULAR_MODEL, TASKS, TEXT, Task

from ..arguments import DEFAULT_ARCH, DEFAULT_BASE, DEFAULT_TASK, base_spec, job_task
from ..jobs import check_job, is_terminal, state_name
from ..progress import ProgressBar
from .choices import UsageError, check_arch, check_base, precision_choice, state_choice, task_choice
from .hyperparameters import (
    SET_HELP,
    check_applies,
    check_bound,
    check_config,
    collect,
    keywords,
    option_values,
    warnings,
)
from .output import (
    AddCommand,
    again,
    details,
    emit,
    key_values,
    metrics,
    print_json,
    task_name,
    timestamp,
    to_dict,
    write_table,
)

if TYPE_CHECKING:
    from ..client import Client

_OPTIONS = {COLLABORATIVE_FILTERING: "collab", TABULAR_MODEL: "tabular"}
"""The job options keyword that --option fills, by task; text tasks fill "text", the others take none."""


def _options_keyword(task: Task | None) -> str | None:
    if task is None:
        return None
    return "text" if task.family == TEXT else _OPTIONS.get(task.name)


def _progress(job: training_pb2.Job) -> str:
    if job.state == training_pb2.QUEUED and job.queue_position:
        return f"queued, #{job.queue_position} in line"
    p = job.progress
    if not job.HasField("progress") or not p.epochs:
        return "-"
    text = f"{p.phase + ' ' if p.phase else ''}epoch {p.epoch}/{p.epochs}"
    return text + (f" batch {p.batch}/{p.batches}" if p.batches else "")


def _job_details(job: training_pb2.Job) -> str:
    r = job.request
    pairs: list[tuple[str, Any]] = [
        ("id", job.id),
        ("state", state_name(job)),
        ("kind", job.kind or "-"),
        ("task", task_name(job.task)),
        ("model name", r.model_name or "-"),
        ("arch", r.arch or "-"),
        ("base", base_spec(r.base) or "-"),
        ("dataset", r.dataset_id or "-"),
        ("progress", _progress(job)),
        ("created", timestamp(job, "created_at")),
        ("started", timestamp(job, "started_at")),
        ("finished", timestamp(job, "finished_at")),
        ("attempts", job.attempts),
    ]
    if r.HasField("hyperparameters"):
        hyper = to_dict(r.hyperparameters)
        pairs.append(("hyperparameters", ", ".join(f"{k}={v}" for k, v in hyper.items()) or "defaults"))
    if job.error:
        pairs.append(("error", job.error))
    if job.result.HasField("model"):
        pairs.append(("model", f"{job.result.model.name}/{job.result.model.version}"))
    if job.result.metrics:
        pairs.append(("metrics", metrics(job.result.metrics)))
    return details(pairs)


def _finish_job(job: training_pb2.Job, a: argparse.Namespace, out: TextIO) -> int:
    emit(a, out, job, _job_details)
    check_job(job)  # raises JobFailed for FAILED / CANCELLED
    return 0


@contextlib.contextmanager
def _following(a: argparse.Namespace, job_id: str) -> Iterator[None]:
    """Ctrl-C while the command follows a job stops the command, not the job: say so, and how to go on."""
    try:
        yield
    except KeyboardInterrupt:
        sys.stderr.write(f"\ninterrupted: job {job_id} keeps running on the server.\n"
                         f"  follow it: {again(a, 'watch', job_id)}\n"
                         f"  stop it:   {again(a, 'cancel', job_id)}\n")
        a.interrupt_explained = True
        raise


def _job_request(a: argparse.Namespace, *, find_lr: bool = False) -> tuple[Task, dict[str, Any], dict[str, Any]]:
    """The task, the SDK's hyperparameter keywords and the typed job options of train and lr-find, checked as
    the front door would check them (usage errors before any call); warns of what the request makes
    meaningless."""
    task = job_task(a.task)[1]
    assert task is not None  # task_choice takes the task table's names only
    a.arch = check_arch(task, a.arch)
    check_base(a.base)
    values = collect(a)
    check_applies(task, values)
    keyword = _options_keyword(task)
    raw_options = key_values(a.option, "--option")
    if raw_options and keyword is None:
        users = ", ".join(t.name for t in TASKS if _options_keyword(t))
        raise UsageError(f"--option applies to {users} jobs, not {task.name}")
    options = option_values(keyword, raw_options) if keyword else {}
    check_config(task, a.arch, a.base, values, options)
    for warning in warnings(task, a.base, values, find_lr=find_lr):
        sys.stderr.write(f"warning: {warning}\n")
    return task, keywords(values, task), options


def _train(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    task, hyper, options = _job_request(a)
    keyword = _options_keyword(task)
    resources = {k: v for k, v in (("workers", a.workers), ("cpus_per_worker", a.cpus_per_worker),
                                   ("gpus_per_worker", a.gpus_per_worker)) if v is not None}
    for name, value in resources.items():
        check_bound(f"--{name.replace('_', '-')}", name, value)
    if (a.workers or 0) > 1 and not task.data_parallel:
        raise UsageError(f"--workers {a.workers}: {task.name} jobs run on one worker (data-parallel: "
                         + ", ".join(t.name for t in TASKS if t.data_parallel) + ")")
    if (a.workers or 0) > 1 and hyper.get("auto_lr") and "lr" not in hyper:
        raise UsageError("--auto-lr runs the LR range test on one worker: run lr-find, then give --lr to a "
                         "data-parallel job")
    job = c.create_fine_tune_job(
        a.dataset, a.model, task=task.name, arch=a.arch or DEFAULT_ARCH, base=a.base, request_id=a.request_id,
        resources=resources or None, **hyper, **({keyword: options} if keyword else {}),
    )
    if a.no_wait:
        emit(a, out, job, lambda j: f"{j.id} {state_name(j)}")
        return 0
    if not a.json:
        sys.stderr.write(f"job {job.id} {state_name(job)}\n")
    with _following(a, job.id):
        job = c.wait(job.id, progress=True)
    return _finish_job(job, a, out)


def _lr_find(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    task, hyper, options = _job_request(a, find_lr=True)
    if not task.find_lr:
        raise UsageError(f"lr-find is not offered for {task.name} jobs (it is for "
                         + ", ".join(t.name for t in TASKS if t.find_lr) + ")")
    sweep = {name: check_bound(f"--{name.replace('_', '-')}", name, getattr(a, name))
             for name in ("start_lr", "end_lr", "num_batches")}
    if not sweep["start_lr"] < sweep["end_lr"]:
        raise UsageError(f"--start-lr {a.start_lr:g} must be below --end-lr {a.end_lr:g}")
    job = c.find_learning_rate(a.dataset, arch=a.arch or DEFAULT_ARCH, task=task.name, base=a.base,
                               freeze_to=a.freeze_to, text=options or None, **sweep, **hyper)
    with _following(a, job.id):
        job = check_job(c.wait(job.id, progress=not a.json))
    if a.json:
        print_json(job.result.lr_finder, out)
    else:
        for name, lr in sorted(job.result.lr_finder.suggestions.items()):
            out.write(f"{name:<16} {lr:.3e}\n")
    if a.plot:
        from ..plots import plot_lr_finder

        plot_lr_finder(job, a.plot)
        sys.stderr.write(f"wrote {a.plot}\n")
    return 0


def _plot(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    from ..plots import plot_training

    plot_training(c.watch_job(a.job_id), a.out)
    out.write(f"wrote {a.out}\n")
    return 0


def _watch(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    if a.json:
        with _following(a, a.job_id):
            for event in c.watch_job(a.job_id, a.from_sequence):
                out.write(json.dumps(to_dict(event)) + "\n")
                out.flush()
        job = c.get_job(a.job_id)
        if is_terminal(job):
            check_job(job)
        return 0
    with _following(a, a.job_id):
        job = c.wait(a.job_id, progress=ProgressBar(stream=out))
    return _finish_job(job, a, out)


def _jobs(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    items = c.list_jobs(states=a.state or None, model_name=a.model)
    if a.json:
        print_json(items, out)
        return 0
    rows = [(j.id, state_name(j), j.request.model_name or "-", j.request.arch or "-", j.request.dataset_id or "-",
             _progress(j), timestamp(j, "created_at"), (j.error[:60] + "...") if len(j.error) > 63 else j.error)
            for j in items]
    return write_table(out, ["ID", "STATE", "MODEL", "ARCH", "DATASET", "PROGRESS", "CREATED", "ERROR"], rows)


def _job(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    emit(a, out, c.get_job(a.job_id), _job_details)
    return 0


def _cancel(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    emit(a, out, c.cancel_job(a.job_id), lambda j: f"{j.id} {state_name(j)}")
    return 0


def _arch_help() -> str:
    names_by_archs: dict[tuple[str, ...], list[str]] = {}
    for task in TASKS:
        names_by_archs.setdefault(task.archs, []).append(task.name)
    choices = "; ".join(f"{', '.join(archs)} for {', '.join(names)}" for archs, names in names_by_archs.items())
    return f"{choices} (default: {DEFAULT_ARCH}, or the task's own default where it has no {DEFAULT_ARCH})"


def _add_job_arguments(p: argparse.ArgumentParser, option_help: str, base_help: str, *, model: bool) -> None:
    """The arguments train (``model``: it names the model it produces) and lr-find share."""
    p.add_argument("--dataset", required=True, metavar="ID", help="dataset id")
    if model:
        p.add_argument("--model", required=True, metavar="NAME", help="name of the model to produce")
    p.add_argument("--task", default=DEFAULT_TASK, type=task_choice,
                   help=f"{', '.join(t.name for t in TASKS)} (default: {DEFAULT_TASK})")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help=option_help)
    p.add_argument("--arch", help=_arch_help())
    p.add_argument("--base", help=base_help)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--image-size", type=int, help="image tasks: input size in pixels")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)


def add_commands(command: AddCommand) -> None:
    p = command("train", _train, "start a fine-tune job (and wait for it, by default)")
    _add_job_arguments(
        p, "a CollabOptions / TabularOptions / TextOptions field, lists comma-separated (repeatable), "
        "e.g. --option target=salary --option categorical=workclass,education",
        f"{DEFAULT_BASE}, torchvision:WEIGHTS, file:PATH, model:NAME[/VERSION] or none (default: {DEFAULT_BASE} "
        "for image tasks; text tasks must choose: none or model:LM_NAME)", model=True)
    p.add_argument("--fbeta-beta", type=float, help="multi-label: beta of F-beta and of the threshold tuning (2)")
    p.add_argument("--void-code", help="segmentation: the class whose pixels are ignored (default: Void if any)")
    p.add_argument("--epochs", type=int, help="epochs after unfreezing")
    p.add_argument("--freeze-epochs", type=int, help="epochs training only the head")
    p.add_argument("--lr", type=float, help="top learning rate")
    p.add_argument("--precision", type=precision_choice, help="auto, fp32, bf16 or fp16 (default: auto)")
    p.add_argument("--request-id", help="idempotency key")
    p.add_argument("--auto-lr", action="store_true", help="let the service pick the LR (range test first)")
    p.add_argument("--workers", type=int,
                   help="data-parallel workers (Ray Train DDP); --batch-size is then the global batch")
    p.add_argument("--cpus-per-worker", type=float)
    p.add_argument("--gpus-per-worker", type=float)
    p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")

    p = command("lr-find", _lr_find, "run the LR range test and print (and plot) the suggested rates")
    _add_job_arguments(
        p, "language_model, text_classification: a TextOptions field (repeatable), e.g. --option bptt=30",
        f"as for train (default: {DEFAULT_BASE} for image tasks); text tasks: none or model:LM_NAME", model=False)
    p.add_argument("--num-batches", type=int, default=100, help="most batches the test runs (default: 100)")
    p.add_argument("--start-lr", type=float, default=1e-7, help="the sweep's first rate (default: 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="the sweep's last rate (default: 10)")
    p.add_argument("--freeze-to", type=int,
                   help="layer groups before this index stay frozen (default: as the job's first stage)")
    p.add_argument("--out", "--plot", dest="plot", metavar="PNG",
                   help="save the loss/lr curve with the suggestions marked (default: no plot)")

    p = command("plot", _plot, "plot a job's LR, momentum and loss curves to a PNG")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--out", default="training.png", metavar="PNG")

    p = command("watch", _watch, "follow a job until it finishes")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--from-sequence", type=int, default=0, help=argparse.SUPPRESS)

    p = command("jobs", _jobs, "list jobs")
    p.add_argument("--state", action="append", type=state_choice, help="only jobs in this state (repeatable)")
    p.add_argument("--model", help="only jobs producing this model name")

    for name, handler, help in (("job", _job, "show a job"), ("cancel", _cancel, "cancel a job")):
        command(name, handler, help).add_argument("job_id", metavar="JOB_ID")
