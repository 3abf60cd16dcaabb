"""The image tasks (classification, multi-label, segmentation): their data, models, training job and serving."""
