"""Stage drivers: where work is spread over Dask workers. Each reads what the stage before wrote."""
