"""Spark through dagster-pyspark: a local Spark by default, the configured master (standalone, K8s) otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from platform_assets.lib.config import PlatformSettings, get_settings

LOG4J2_CONFIG = Path(__file__).with_name("spark_log4j2.properties")


def spark_config(settings: PlatformSettings | None = None) -> dict[str, str]:
    """Spark settings for `settings` (default: the current environment's; see `PlatformSettings.spark`).

    `SPARK_MASTER` picks the cluster (default `local[2]`); `SPARK_CONF_<KEY>` variables add or override any
    setting (`SPARK_CONF_spark_executor_memory=4g` → `spark.executor.memory=4g`). When the lake is on S3, the
    s3a connector is pointed at the same endpoint as everything else (the image must carry hadoop-aws for
    Spark to read s3a:// directly; the platform's own IO goes through the lake IO manager).
    Credentials are never put into this config: it is shown in the UI.
    """
    settings = settings or get_settings()
    spark = settings.spark
    config: dict[str, str] = {
        "spark.master": spark.master,
        "spark.app.name": "platform_assets",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": spark.shuffle_partitions,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.memory": spark.driver_memory,
    }
    if spark.master.startswith("local"):
        # Spark binds the machine's external address otherwise.
        config["spark.driver.host"] = "127.0.0.1"
        config["spark.driver.bindAddress"] = "127.0.0.1"
        config["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}"
    if settings.lake_uri.startswith("s3://"):
        # Credentials stay in the environment (s3a's default provider chain reads AWS_ACCESS_KEY_ID/...).
        config["spark.hadoop.fs.s3a.path.style.access"] = "true"
        if settings.s3.endpoint_url:
            config["spark.hadoop.fs.s3a.endpoint"] = settings.s3.endpoint_url
    config.update(spark.extra_conf)
    return config


class SparkResource(dg.ConfigurableResource):
    """A Spark session built by dagster-pyspark, created on first use.

    dagster-pyspark's own resources import pyspark when their module loads; this wrapper imports it only when
    a step asks for the session, so loading the code location stays fast. The code location sets
    `spark_conf` to the environment's settings when it loads (`shared_resources`), so the UI shows them.
    """

    spark_conf: dict[str, str] | None = Field(
        default=None,
        description="The Spark settings (spark.master, …). Unset: spark_config() of the run's environment.",
    )
    spark_config_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Spark settings applied on top of spark_conf.",
    )

    def resolved_config(self) -> dict[str, str]:
        """The settings the session is built with."""
        base = self.spark_conf if self.spark_conf is not None else spark_config()
        return {**base, **self.spark_config_overrides}

    @property
    def spark_session(self) -> Any:
        """The process's SparkSession (getOrCreate: one per process, shared by every step and test)."""
        from dagster_pyspark.resources import spark_session_from_config

        return spark_session_from_config(self.resolved_config())
