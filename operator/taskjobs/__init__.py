"""taskjob: run DAGs of tasks as Kubernetes Jobs."""

GROUP = "taskjob.dev"
VERSION = "v1alpha1"
KIND = "TaskJob"
PLURAL = "taskjobs"
API_VERSION = f"{GROUP}/{VERSION}"
