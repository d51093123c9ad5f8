"""Adapting to your own labels: a head trained over the base model's frozen embeddings
(`emotion adapt`). train.py plans, embeds (through the batch job's scorer, with a cache) and fits;
head.py is the logistic head; report.py prints and saves what it measured. The adapted folder's
format is emotion.adapter, which loading needs."""
