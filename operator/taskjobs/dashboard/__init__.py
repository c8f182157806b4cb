"""A live web dashboard of TaskJobs: `taskjob dashboard` (server.py), fed by one set of watches (watch.py)."""
