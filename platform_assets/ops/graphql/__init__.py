"""Dagster's GraphQL API over plain HTTP: the transport with its error mapping, the documents, the result shapes.

`platform_assets.ops.graphql_client.DagsterWebserver` puts them together; nothing here imports dagster.
"""
