"""The taskjob runner: seed pipeline operations over JSON values, run as one task."""
