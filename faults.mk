# Fault injection (tools/faults.py): kill -TERM / kill -9 mid-epoch, a crashing sweep job, a corrupt
# record, two sweeps into one results dir; ends with "faults: N injected, N survived, 0 records lost".
.PHONY: fault-test
fault-test:
	$(PY) tools/faults.py
