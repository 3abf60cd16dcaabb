"""The engine's typed progress events as the stored proto JobEvent fields that WatchJob replays, and the typed
results as their protos: the one place the control plane translates between the two."""

from __future__ import annotations

from google.protobuf.message import Message

from fineserve.v1 import training_pb2
from fineserve_common.events import Batch, Checkpoint, Epoch, Interpretation, JobResult, Log, LrFinderResult

Progress = Log | Batch | Epoch | Checkpoint


def progress_fields(ev: Progress) -> dict[str, Message]:
    """The JobEvent field (one of log, batch, epoch, checkpoint) that records ev."""
    match ev:
        case Log(message=message):
            return {"log": training_pb2.LogMessage(message=message)}
        case Batch():
            return {"batch": training_pb2.BatchProgress(
                phase=ev.phase, epoch=ev.epoch, epochs=ev.epochs, batch=ev.batch, batches=ev.batches, loss=ev.loss,
                lr=ev.lr, momentum=ev.momentum, group_lrs=ev.group_lrs)}
        case Epoch():
            return {"epoch": training_pb2.EpochMetrics(phase=ev.phase, epoch=ev.epoch, epochs=ev.epochs,
                                                       metrics=ev.metrics, seconds=ev.seconds)}
        case Checkpoint(epoch=epoch, path=path):
            return {"checkpoint": training_pb2.CheckpointSaved(epoch=epoch, path=path)}


def job_progress(ev: Batch) -> training_pb2.JobProgress:
    """Where a job is, as GetJob shows it."""
    return training_pb2.JobProgress(epoch=ev.epoch, epochs=ev.epochs, batch=ev.batch, batches=ev.batches,
                                    phase=ev.phase)


def lr_finder_proto(finder: LrFinderResult) -> training_pb2.LrFinderResult:
    return training_pb2.LrFinderResult(points=[training_pb2.LrPoint(lr=lr, loss=loss) for lr, loss in finder.points],
                                       suggestions=finder.suggestions, diverged=finder.diverged)


def interpretation_proto(found: Interpretation) -> training_pb2.Interpretation:
    return training_pb2.Interpretation(
        task=found.task, classes=found.classes, confusion=[n for row in found.confusion for n in row],
        per_class=[training_pb2.ClassMetrics(name=c.name, precision=c.precision, recall=c.recall, f_score=c.f_score,
                                             support=c.support, iou=c.iou, threshold=c.threshold)
                   for c in found.per_class],
        most_confused=[training_pb2.ConfusedPair(actual=a, predicted=p, count=n) for a, p, n in found.most_confused],
        top_losses=[training_pb2.TopLoss(item=t.item, actual=t.actual, predicted=t.predicted, loss=t.loss,
                                         probability=t.probability) for t in found.top_losses],
        beta=found.beta, items=found.items, precision=found.precision)


def result_proto(outcome: JobResult) -> training_pb2.JobResult:
    """The typed result's fields the job manager records before the model is published (model, metrics)."""
    result = training_pb2.JobResult(epochs_trained=outcome.epochs_trained)
    if outcome.lr_finder is not None:
        result.lr_finder.CopyFrom(lr_finder_proto(outcome.lr_finder))
    if outcome.chosen_lr is not None:
        result.chosen_lr = outcome.chosen_lr
    if outcome.interpretation is not None:
        result.interpretation.CopyFrom(interpretation_proto(outcome.interpretation))
    return result
