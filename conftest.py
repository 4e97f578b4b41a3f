"""Root conftest: nothing. The qsm-eval plugin loads through its pytest11 entry point, and the
harness's own test fixtures live in tests/conftest.py, so `pytest evals` starts lean."""
