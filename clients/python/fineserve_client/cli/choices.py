"""Names given on the command line, checked before any call to the server: a misspelt one is a usage error that
offers the closest known names ("did you mean", difflib) and lists them all, instead of protobuf's "Enum Task has
no value defined for name ..." or a refusal one round trip later."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable, Sequence

from fineserve.v1 import datasets_pb2, training_pb2
from fineserve_common.tasks import PRECISIONS, TASKS, Task

TASK_NAMES = tuple(t.name for t in TASKS)
LAYOUTS = tuple(n.lower() for n in datasets_pb2.DatasetLayout.keys() if not n.endswith("UNSPECIFIED"))  # noqa: SIM118
JOB_STATES = tuple(n.lower() for n in training_pb2.JobState.keys() if not n.endswith("UNSPECIFIED"))  # noqa: SIM118


class UsageError(ValueError):
    """A command line the CLI refuses before it calls the server (exit status 2)."""


def normal(text: str) -> str:
    """The spelling names are compared in: lower case, ``-`` as ``_``."""
    return text.strip().lower().replace("-", "_")


def unknown(what: str, value: str, choices: Iterable[str], where: str = "") -> str:
    """The message for ``value`` not among ``choices``: the closest ones first, then every choice."""
    names = list(choices)
    close = difflib.get_close_matches(normal(value), names, n=2, cutoff=0.7)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown {what} {value!r}{where}{hint} (choices: {', '.join(names)})"


def pick(what: str, value: str, choices: Sequence[str], where: str = "") -> str:
    """``value`` spelt as its choice; a :class:`UsageError` with the suggestions when it is none of them."""
    key = normal(value)
    if key in choices:
        return key
    raise UsageError(unknown(what, value, choices, where))


def choice(what: str, choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse ``type`` taking one of ``choices``: argparse reports the suggestions as a usage error."""

    def parse(text: str) -> str:
        try:
            return pick(what, text, choices)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


task_choice = choice("task", TASK_NAMES)
precision_choice = choice("precision", PRECISIONS)
layout_choice = choice("layout", LAYOUTS)
state_choice = choice("job state", JOB_STATES)


def check_arch(task: Task, arch: str | None) -> str | None:
    """An architecture the task trains, spelt as the table does (``None``: the task's own default)."""
    return None if arch is None else pick("arch", arch, task.archs, f" for {task.name}")


BASE_KINDS = ("imagenet", "torchvision", "file", "model", "none", "random")
"""What --base starts with (arguments.parse_base reads the rest)."""


def check_base(base: str | None) -> None:
    """A base whose kind is known, so that a typo gets suggestions before parse_base's list of forms."""
    if base is not None and normal(base.partition(":")[0]) not in BASE_KINDS:
        raise UsageError(unknown("base", base, BASE_KINDS) + "; forms: imagenet, torchvision[:WEIGHTS], file:PATH, "
                         "model:NAME[/VERSION], none")
