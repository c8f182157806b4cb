"""The `taskjob` command line: validate, graph, run locally, and work with TaskJobs in a cluster."""
