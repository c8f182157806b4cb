"""The imperative shell: the operator process (kopf handlers, API calls, store, work queue)."""

from .noclient import import_kopf

import_kopf()  # before any shell module imports kopf: see noclient.py
