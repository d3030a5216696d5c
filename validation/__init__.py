"""The validation suite: the paper's theorems checked numerically, and its experiments reproduced.

Run ``python -m validation [--out DIR]``; it prints each check and writes
``DIR/report.md`` with figures (default ``validation-report/``).
"""
