"""Measuring a scorer: miss rate at false alarms per hour, DET curves, detection delay.

:mod:`kws.metrics.det` counts events on decision tracks; :mod:`kws.metrics.evaluate` runs a
scorer over positive clips and negative audio. Used by training validation, export calibration
and ``kws eval``; pure numpy, no torch.
"""
