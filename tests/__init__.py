"""Spindle test suite; a package so plugins and helpers import as ``tests.*`` from the repo root."""
