"""The registrations domain's partitions: one per registered dataset_id, added by the registrations sensor."""

import dagster as dg

registered_datasets = dg.DynamicPartitionsDefinition(name="registered_datasets")
