"""One run, end to end: resolved config -> validated run -> model + method + data -> `train.fit` -> record.

- `validate`: every check that needs no compute, all problems at once.
- `execute`: skip if finished, one process per run identity, train, write the record (or a failure record).
- `preempt`: stop signals checkpoint at the next step boundary.
- `wandb_logger`: the W&B run beside the record.
"""
from .execute import Outcome, execute, failure_record, load_data, make_record, run, seed_everything
from .validate import RunConfigError, ValidatedRun, plain_config, run_id_of, validate

__all__ = ["Outcome", "RunConfigError", "ValidatedRun", "execute", "failure_record", "load_data", "make_record",
           "plain_config", "run", "run_id_of", "seed_everything", "validate"]
