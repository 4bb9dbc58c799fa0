"""The benchmarks of ``make bench`` (``scripts/bench.py``), one module per benchmark.

``append``, ``latency``, ``replay`` and ``memory`` each export ``bench_<name>(tmp) ->
list[Row]``; ``common``, ``processes`` and ``machine`` hold what they share.
``idle_actor`` is imported by the measured actor process, so this file imports nothing.
"""
