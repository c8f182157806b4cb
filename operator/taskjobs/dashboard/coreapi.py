"""Everything the dashboard takes from the operator's core, in one place.

The core's modules may move (into a subpackage); only this file's imports then change.
"""

from __future__ import annotations

from .. import GROUP, KIND, PLURAL, VERSION
from ..core.fanout import instance_name, instance_summary
from ..core.naming import ANNOTATION_RETRY, ANNOTATION_RETRY_TASKS, LABEL_ATTEMPT, LABEL_TASK, LABEL_TASKJOB
from ..core.observe import attempt_fact, observe_attempt
from ..core.render import ANNOTATION_STOP_MESSAGE, ANNOTATION_STOP_REASON

__all__ = [
    "ANNOTATION_RETRY",
    "ANNOTATION_RETRY_TASKS",
    "ANNOTATION_STOP_MESSAGE",
    "ANNOTATION_STOP_REASON",
    "GROUP",
    "KIND",
    "LABEL_ATTEMPT",
    "LABEL_TASK",
    "LABEL_TASKJOB",
    "PLURAL",
    "VERSION",
    "attempt_fact",
    "instance_name",
    "instance_summary",
    "observe_attempt",
]
