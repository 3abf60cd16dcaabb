"""Runs the service locally as child processes, for the demo, the end-to-end tests and the benchmarks; not part of
the deployed server."""
