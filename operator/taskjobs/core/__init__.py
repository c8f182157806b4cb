"""The functional core: pure functions over pydantic models (validation, the DAG, the plan, backoff, status,
Job rendering, what Jobs and pods say). Nothing here imports kopf or a Kubernetes client, reads the
clock or does I/O; `shell/` and `cli/` do, and call into this package.
"""
