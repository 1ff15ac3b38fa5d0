"""Entrypoints of the Ray jobs the platform submits to a cluster (RAY_ADDRESS=http(s)://head:8265).

Each is a module run as `python -m platform_assets.jobs.<name>` on the cluster, where the data is read and
written; it reports back to the Dagster step that submitted it through Dagster Pipes.
"""
