"""Prefect flows and the command line that wire the steps in ``tasks``."""
