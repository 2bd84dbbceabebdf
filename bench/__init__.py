"""Side-by-side benchmarks of Spindle and Ray.

The suite exists because Spindle's claim (faster and lighter than Ray for the same programs) only counts
when measured against Ray on the same machine in the same run. The orchestrator (``bench.run``) starts
every workload in a fresh interpreter per implementation; the workload code (``bench.workloads``) is
written once against Ray's API and receives either ``ray`` or ``spindle`` as the module, so the same code
runs unchanged under both.
"""
