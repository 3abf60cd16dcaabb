"""The tabular tasks (collaborative filtering, tabular): delimited files, models, training jobs and serving."""
