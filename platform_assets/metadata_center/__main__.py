"""`python -m platform_assets.metadata_center serve …`: the service without the `platform` entry point."""

from platform_assets.lib.runtime_env import apply_runtime_defaults
from platform_assets.metadata_center.cli import metadata_center_cli

if __name__ == "__main__":
    apply_runtime_defaults()
    metadata_center_cli()
