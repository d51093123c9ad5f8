"""Batch jobs over many files (the `emotion batch` command): inputs and manifests (inputs), the
row shape (rows), decoding, scoring and resuming (job), output files (sinks), speech spans
(vad), Ray (distributed) and labelled evaluation (evaluation); and heads trained on labels of
one's own (the `emotion adapt` command: adapt, head, adapt_report). Optional libraries (pyarrow,
silero-vad, matplotlib, ray) are imported where they are used."""
