"""The eval suite needs nothing beyond the qsm-eval plugin (loaded by its pytest11 entry point)."""
