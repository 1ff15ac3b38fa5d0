"""Sensors of the cross-domain quality operations: alerts, and freshness evaluation for every domain."""

import warnings

import dagster as dg

from platform_assets.defs.quality.alerts import check_failure_alert_sensor, run_failure_alert_sensor

# The metadata key Dagster's freshness-check builders put on each check they build.
FRESHNESS_PARAMS_KEY = "dagster/freshness_params"


def freshness_checks_in(domains: dg.Definitions) -> list[dg.AssetChecksDefinition]:
    """The freshness checks the domains declared (built with `dg.build_last_update_freshness_checks`)."""
    return [
        checks
        for checks in domains.asset_checks or []
        if isinstance(checks, dg.AssetChecksDefinition)
        and any(FRESHNESS_PARAMS_KEY in spec.metadata for spec in checks.check_specs)
    ]


def build_quality_sensors(domains: dg.Definitions) -> list[dg.SensorDefinition]:
    """The alert sensors, plus a sensor that keeps every domain's freshness checks evaluated."""
    sensors = [run_failure_alert_sensor, check_failure_alert_sensor]
    freshness = freshness_checks_in(domains)
    if freshness:
        with warnings.catch_warnings():
            # Dagster prefers FreshnessPolicy (also attached to the assets); the sensor keeps the checks evaluated.
            warnings.simplefilter("ignore", dg.SupersessionWarning)
            sensors.append(
                dg.build_sensor_for_freshness_checks(
                    freshness_checks=freshness,
                    name="freshness_checks_sensor",
                    minimum_interval_seconds=600,
                    default_status=dg.DefaultSensorStatus.RUNNING,
                )
            )
    return sensors
