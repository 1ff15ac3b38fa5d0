"""The GraphQL documents the platform sends to a Dagster webserver.

Every `…OrError` field asks for `... on Error { message }`: Dagster's error types share that interface, so the
transport can name any of them (`GraphQLTransport.expect`). The tests validate each document against the
schema of the installed dagster-graphql.
"""

from __future__ import annotations

_METADATA_FRAGMENT = """
fragment PlatformMetadata on MetadataEntry {
  label
  __typename
  ... on TextMetadataEntry { text }
  ... on PathMetadataEntry { path }
  ... on UrlMetadataEntry { url }
  ... on IntMetadataEntry { intValue intRepr }
  ... on FloatMetadataEntry { floatValue floatRepr }
  ... on BoolMetadataEntry { boolValue }
  ... on JsonMetadataEntry { jsonString }
}
"""

RUN_QUERY = """
query PlatformRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId jobName status creationTime startTime endTime canTerminate
      tags { key value }
      stepKeysToExecute
      assetSelection { path }
      executionPlan { steps { key } }
      stepStats { stepKey status startTime endTime attempts { startTime endTime } }
    }
    ... on Error { message }
  }
}
"""

RUN_STATUS_QUERY = """
query PlatformRunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on Error { message }
  }
}
"""

LOGS_QUERY = (
    """
query PlatformRunLogs($runId: ID!, $cursor: String, $limit: Int) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: $limit) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message timestamp level stepKey eventType }
        ... on ErrorEvent { error { message causes { message } } }
        ... on MaterializationEvent { assetKey { path } partition metadataEntries { ...PlatformMetadata } }
        ... on AssetCheckEvaluationEvent {
          evaluation {
            checkName success severity description partition
            assetKey { path }
            metadataEntries { ...PlatformMetadata }
          }
        }
      }
    }
    ... on Error { message }
  }
}
"""
    + _METADATA_FRAGMENT
)

RUNS_QUERY = """
query PlatformRuns($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } }
    ... on Error { message }
  }
}
"""

ASSET_NODES_QUERY = """
query PlatformAssetNodes {
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    dependedByKeys { path }
    groupName
    isMaterializable
    isPartitioned
    kinds
    tags { key value }
    repository { name location { name } }
  }
}
"""

JOBS_QUERY = """
query PlatformJobs {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on Error { message }
  }
}
"""

INSTANCE_QUERY = """
query PlatformInstanceStatus {
  version
  instance {
    runQueuingSupported
    runLauncher { name }
    runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml }
    daemonHealth {
      allDaemonStatuses { daemonType required healthy lastHeartbeatTime lastHeartbeatErrors { message } }
    }
  }
  queued: runsOrError(filter: {statuses: [QUEUED]}) { __typename ... on Runs { count } }
  inProgress: runsOrError(filter: {statuses: [STARTING, STARTED, CANCELING]}) { __typename ... on Runs { count } }
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation PlatformLaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

# `$policy` SAFE_TERMINATE (the default) asks the run's worker to stop; MARK_AS_CANCELED_IMMEDIATELY marks the
# run CANCELED whether or not a worker answers (for a run whose worker is gone).
TERMINATE_RUN_MUTATION = """
mutation PlatformTerminateRun($runId: String!, $policy: TerminateRunPolicy) {
  terminateRun(runId: $runId, terminatePolicy: $policy) {
    __typename
    ... on TerminateRunFailure { message }
    ... on Error { message }
  }
}
"""

ALL = (
    RUN_QUERY,
    RUN_STATUS_QUERY,
    LOGS_QUERY,
    RUNS_QUERY,
    ASSET_NODES_QUERY,
    JOBS_QUERY,
    INSTANCE_QUERY,
    LAUNCH_RUN_MUTATION,
    TERMINATE_RUN_MUTATION,
)
