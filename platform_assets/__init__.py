"""platform_assets: an AI data platform built on Dagster.

Importing the package changes nothing in the process. The entry points (the `platform` command, the code
location in `definitions.py`, the metadata center's `__main__`, the tests) apply the runtime environment
defaults themselves (`platform_assets.lib.runtime_env.apply_runtime_defaults`).
"""
