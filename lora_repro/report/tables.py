"""Old home of the tables, split into specs / build / render / table1 (see `lora_repro.report`).

Kept only for the callers outside `report/` that still import it: tests/test_sweep.py (`table_spec`,
`_opt_equal`), tests/test_sweep_slow.py (`main`) and tools/faults.py (`load_finished`). Once they import
from `lora_repro.report` / `.build` / `.specs`, delete this file.
"""
from . import main  # noqa: F401
from .build import _opt_equal, load_finished  # noqa: F401
from .specs import table_spec  # noqa: F401
