"""Learning GB properties: labels, XGBoost models tuned inside the training rows, the paper's
Table I protocol and learning curves over Dask workers, final models (xgboost.dask), reports
and their figures, and per-GB feature tables from outside the store."""
