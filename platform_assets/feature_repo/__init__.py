"""The Feast feature repository: entity `user`, feature views `user_statistics` and `user_realtime_activity`."""
