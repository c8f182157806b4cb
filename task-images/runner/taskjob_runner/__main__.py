"""Entry point: `python -m taskjob_runner <operation> [args]`."""

from .cli import main

raise SystemExit(main())
