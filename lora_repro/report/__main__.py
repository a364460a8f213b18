"""`python -m lora_repro.report`: the same as `lora-repro tables`."""
import sys

from . import main

sys.exit(main())
