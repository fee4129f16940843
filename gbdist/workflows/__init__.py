"""What a command does, end to end: the lock, the Dask client, the stages and the outputs.

The CLI, the demo, the benchmark and notebooks all call these functions; they return results
and write files, and never print.
"""
