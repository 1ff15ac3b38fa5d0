"""Spark through dagster-pyspark: a local Spark by default, the configured master (standalone, K8s) otherwise."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from pydantic import Field

from platform_assets.lib.config import get_settings


def spark_config() -> dict[str, Any]:
    """Spark settings for the current environment.

    `SPARK_MASTER` picks the cluster (default `local[2]`); `SPARK_CONF_<KEY>` variables add or override any
    setting (`SPARK_CONF_spark_executor_memory=4g` → `spark.executor.memory=4g`). When the lake is on S3, the
    s3a connector is pointed at the same endpoint and credentials as everything else (the image must carry
    hadoop-aws for Spark to read s3a:// directly; the platform's own IO goes through the lake IO manager).
    Credentials are never put into this config: it is shown in the UI.
    """
    settings = get_settings()
    config: dict[str, Any] = {
        "spark.master": os.environ.get("SPARK_MASTER", "local[2]"),
        "spark.app.name": "platform_assets",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": os.environ.get("SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.memory": os.environ.get("SPARK_DRIVER_MEMORY", "1g"),
    }
    if config["spark.master"].startswith("local"):
        # Spark binds the machine's external address otherwise.
        config["spark.driver.host"] = "127.0.0.1"
        config["spark.driver.bindAddress"] = "127.0.0.1"
    if settings.lake_uri.startswith("s3://"):
        # Credentials stay in the environment (s3a's default provider chain reads AWS_ACCESS_KEY_ID/...):
        # resource config is shown in the Dagster UI, so no secret goes into it.
        s3 = settings.s3
        config["spark.hadoop.fs.s3a.path.style.access"] = "true"
        if s3.endpoint_url:
            config["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint_url
    for name, value in os.environ.items():
        if name.startswith("SPARK_CONF_"):
            config[name[len("SPARK_CONF_") :].replace("_", ".")] = value
    return config


class SparkResource(dg.ConfigurableResource):
    """A Spark session built by dagster-pyspark, created on first use.

    dagster-pyspark's own resources import pyspark when their module loads; this wrapper imports it only when
    a step asks for the session, so loading the code location stays fast. Settings resolve at run time from
    the environment (see `spark_config`) unless given here.
    """

    spark_config_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Spark settings applied on top of the environment's (spark_config()).",
    )

    @property
    def spark_session(self) -> Any:
        """The process's SparkSession (getOrCreate: one per process, shared by every step and test)."""
        from dagster_pyspark.resources import spark_session_from_config

        return spark_session_from_config({**spark_config(), **self.spark_config_overrides})
