"""The head's job manager: Ray-compatible job submission (records, supervised entrypoints, packages)."""
