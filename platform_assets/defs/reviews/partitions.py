"""The reviews domain's partitions: one per delivery, a landing file.

A delivery is a file rather than a day of arrivals because a file is what a source delivers and re-delivers: a
corrected file replaces exactly the rows it brought (its partition), whichever day it arrives, and a day of
arrivals would mix files that change independently. The key is the file's path relative to landing/reviews
(`_source_file` in every reviews table, which is also the Iceberg partition column).
"""

import dagster as dg

review_deliveries = dg.DynamicPartitionsDefinition(name="review_deliveries")

# The lake tables of the reviews domain are partitioned by this column (it holds the partition key).
DELIVERY_COLUMN = "_source_file"
