"""Disentanglement metrics with disentanglement_lib's definitions.

One module per metric; each takes plain arrays (codes (num_points, num_codes),
factors (num_points, num_factors) ints) or a ground-truth data set and a
representation function, and returns a dict with disentanglement_lib's keys
(Locatello et al. 2019, disentanglement_lib/evaluation/metrics/*.py).
"""
