"""`python -m platform_assets.metadata_center serve …`: the service without the `platform` entry point."""

from platform_assets.metadata_center.cli import metadata_center_cli

if __name__ == "__main__":
    metadata_center_cli()
