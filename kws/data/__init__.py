"""Data: where audio comes from and how it is split by speaker (:mod:`kws.data.corpora`)."""
