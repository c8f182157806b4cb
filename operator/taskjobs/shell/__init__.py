"""The imperative shell: kopf handlers, the Kubernetes client, and executing plans."""
