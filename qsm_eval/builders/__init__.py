"""Builders that cut segment sets from raw corpora (``qsm-eval build ...``)."""
