"""Code that runs on Ray workers: job entrypoints and serving replicas around the engine."""
