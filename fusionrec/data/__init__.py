"""Datasets: catalog schema, loaders, cleaning, splits, leave-one-out examples and candidate files, generated media and `fusionrec data`; shared by finetune and evaluation."""
