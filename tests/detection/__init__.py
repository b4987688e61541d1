"""Anomaly detection: detectors, alarms, alerts, NAB-grade evaluation."""
