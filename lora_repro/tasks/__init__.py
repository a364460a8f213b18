"""Tasks of the paper: GLUE (8 tasks), E2E NLG, WikiSQL, SAMSum, and MNLI for GPT-2."""
from .base import EvalItem, Task, TaskConfigError

TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskConfigError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()


from . import e2e, glue, samsum, wikisql  # noqa: E402,F401  (modules register their tasks on import)

__all__ = ["EvalItem", "TASKS", "Task", "TaskConfigError", "get_task", "register"]
