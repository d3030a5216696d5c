"""Benchmarks: scripts that time kltrain beside a peer or a floor in the same run (never timed tests).

    timing       ``kltrain bench``: seconds per update of every algorithm and backend
    jax_peer     the JAX peer, a backend timed beside ours on both problems (``--peer jax``)
    batch_sweep  the same rows for B = 20…500 and 784–1000–10 (``--sweep-batch``)
    threads      the chains on one numba thread and on all (``--threads``)
    costfit      fits kltrain.nets.cost's constants to a committed sweep
    profile      ``kltrain bench --profile``: where the reduced IS update's time goes, against the machine's floor
    distributed  ``kltrain bench-distributed``: the Dask-sharded IS update against the worker count
"""
