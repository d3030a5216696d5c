"""Benchmarks: scripts that time kltrain beside a peer or a floor in the same run (never timed tests).

    timing       ``kltrain bench``: seconds per update of every algorithm and backend
    jax_peer     the JAX peer timed beside ours (``--peer jax``)
    profile      ``kltrain bench --profile``: where the reduced IS update's time goes, against the machine's floor
    distributed  ``kltrain bench-distributed``: the Dask-sharded IS update against the worker count
"""
