"""Operating the platform: run automation over the Dagster webserver's GraphQL API, and deployment helpers.

`runs_cli` and `instance_cli` (in `platform_assets.ops.runs_cli`) are the `platform runs …` and
`platform instance …` command groups; `platform_assets.ops.graphql_client` is the library behind them.
`platform_assets.ops.k8s_config` holds the embedding step's pod shapes (dagster-k8s op tags).
Nothing here imports dagster-graphql, dagster or any heavy module at import time, so `platform --help` stays fast.
"""
