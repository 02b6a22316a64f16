"""Shared infrastructure: the data home, errors, atomic writes, records, emotions, devices,
precision, base models and the poem text format. Imports nothing else from poetstudio."""
