"""Anomaly detection: scoring, metrics, evaluation over a labelled corpus (NAB layout).

Evaluation (`amml evaluate`), one module per job:

* :mod:`.windows` — labelled windows placed on a series' rows; NAB's probationary period;
* :mod:`.nab_score` — the NAB score: scaled sigmoid, profiles, normalisation, NAB's threshold optimisation;
* :mod:`.event_metrics` — event precision/recall/F1 (every flagged record outside a window is a false positive),
  point-wise F1, mean time to detect;
* :mod:`.nab_corpus` — a corpus in NAB's layout with its windows (untrusted labels checked), NAB result files;
* :mod:`.tap` — what stands in for a pipeline's egresses while it is evaluated;
* :mod:`.evaluate`, :mod:`.report_text` — the command: a pipeline run per series, the report as text or JSON.

The detectors themselves are components (``airflow_amml/components/detectors.py``); the vectorised helpers
they share (rolling statistics, …) are the other modules of this package.
"""
