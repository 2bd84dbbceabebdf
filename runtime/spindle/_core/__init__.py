"""Code that runs in drivers and workers: the core worker, task submission and execution, the client API."""
