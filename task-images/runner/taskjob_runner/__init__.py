"""The taskjob runner: seed pipeline operations over JSON values, run as one task.

`python -m taskjob_runner <operation> [args]`; see `taskjob_runner.cli` for the contract.
"""

__version__ = "0.1.0"
