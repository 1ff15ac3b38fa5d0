"""The metadata center over real HTTP: a real service process (uvicorn, SQLite) on a loopback port.

Registration, versions, the list cursor, the Cube Studio view, 422s naming the field, authentication,
lineage, and the `platform datasets` CLI against the running service.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from platform_assets.metadata_center.cli import datasets_cli
from platform_assets.metadata_center.client import (
    MetadataCenterClient,
    MetadataCenterError,
    MetadataCenterUnavailable,
)
from platform_assets_tests.conftest import free_port
from platform_assets_tests.metadata_center_fixture import (  # noqa: F401 - fixtures
    SEED_PAYLOAD,
    RunningMetadataCenter,
    metadata_center,
    metadata_center_service,
    postgres_url,
    seed_payload,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningMetadataCenter]:
    """One service per backend for the module: SQLite (the default) and the session's Postgres database."""
    db_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with metadata_center(
        tmp_path_factory.mktemp(f"mc_api_{request.param}") / "platform",
        db_url=db_url,
        extra_env={"AWS_ENDPOINT_URL": "http://minio.kubeflow.svc.cluster.local:9000"},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(service: RunningMetadataCenter) -> MetadataCenterClient:
    return service.client()


def last_seq(client: MetadataCenterClient) -> int:
    return max((item["seq"] for item in client.iter_registrations()), default=0)


def test_health(service: RunningMetadataCenter, client: MetadataCenterClient) -> None:
    backend = "postgresql" if service.db_url.startswith("postgresql") else "sqlite"
    assert client.health() == {"status": "ok", "database": backend, "schema_revision": "0002"}


def test_register_list_get_and_versions(client: MetadataCenterClient) -> None:
    before = last_seq(client)
    first = client.register(seed_payload("sales_training_2024_01"))
    assert first["dataset_id"] == "sales_training_2024_01" and first["version"] == 1
    assert first["seq"] == before + 1
    assert first["payload"]["schema"]["columns"][1] == {
        "name": "amount",
        "type": "decimal(10,2)",
        "nullable": True,
    }

    second = client.register(seed_payload("sales_training_2024_01", row_count=10000500, tags=["sales"]))
    assert (second["version"], second["seq"]) == (2, before + 2)

    page = client.list(after=before, limit=10)
    assert [(i["seq"], i["dataset_id"], i["version"]) for i in page] == [
        (before + 1, "sales_training_2024_01", 1),
        (before + 2, "sales_training_2024_01", 2),
    ]
    assert page.next_after == before + 2 and not page.has_more
    assert page.items[0]["payload"]["metadata"]["etl_job_id"] == "etl_sales_001"
    assert client.list(after=before, limit=1).has_more
    assert client.list(after=before + 2).items == []
    assert client.list(after=before + 2).next_after == before + 2

    view = client.get("sales_training_2024_01")
    assert view["version"] == 2 and view["versions"] == [1, 2] and view["row_count"] == 10000500
    assert view["storage"] == {
        "protocol": "s3",
        "endpoint": "minio.kubeflow.svc.cluster.local:9000",
        "endpoint_url": "http://minio.kubeflow.svc.cluster.local:9000",
        "bucket": "etl-output",
        "path": "sales/2024-01/",
        "uri": "s3://etl-output/sales/2024-01/",
        "access_via": "mount|s3_sdk",
    }
    assert view["schema"]["columns"][0] == {"name": "order_id", "type": "bigint", "nullable": True}
    assert view["mount_command"] == "platform datasets mount sales_training_2024_01 /mnt/data"
    assert view["name"] == "销售数据训练集 v1.0" and view["tags"] == ["sales"]

    old = client.get("sales_training_2024_01", version=1)
    assert old["version"] == 1 and old["row_count"] == 10000000 and old["tags"] == SEED_PAYLOAD["tags"]
    assert old["mount_command"].endswith("--version 1")

    with pytest.raises(MetadataCenterError) as unknown_version:
        client.get("sales_training_2024_01", version=9)
    assert (unknown_version.value.status, unknown_version.value.field) == (404, "version")
    with pytest.raises(MetadataCenterError) as unknown:
        client.get("no_such_dataset")
    assert unknown.value.status == 404 and "not registered" in unknown.value.message


def test_local_storage_view(
    service: RunningMetadataCenter, client: MetadataCenterClient, tmp_path: Path
) -> None:
    # Under the service's shared directory: local registrations must be inside its storage roots.
    data = service.shared_dir / tmp_path.name / "data"
    payload = seed_payload(storage_path=f"file://{data}/", format="CSV")
    registered = client.register(payload)
    assert registered["payload"]["format"] == "csv"
    view = client.get(payload["dataset_id"])
    assert view["storage"]["protocol"] == "file" and view["storage"]["bucket"] is None
    assert view["storage"]["path"] == f"{data}/" and view["storage"]["endpoint"] is None


def test_list_filters_by_tag_and_latest(client: MetadataCenterClient) -> None:
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    a = seed_payload(tags=[tag, "x"])
    b = seed_payload(tags=[tag])
    client.register(a)
    client.register(b)
    client.register({**a, "row_count": 1})
    tagged = [(i["dataset_id"], i["version"]) for i in client.iter_registrations(tags=[tag])]
    assert tagged == [(a["dataset_id"], 1), (b["dataset_id"], 1), (a["dataset_id"], 2)]
    latest = [(i["dataset_id"], i["version"]) for i in client.iter_registrations(tags=[tag], latest=True)]
    assert latest == [(b["dataset_id"], 1), (a["dataset_id"], 2)]
    assert [i["dataset_id"] for i in client.iter_registrations(tags=[tag, "x"])] == [a["dataset_id"]] * 2


INVALID_PAYLOADS = [
    ("missing dataset_id", lambda p: p.pop("dataset_id"), "dataset_id"),
    ("dataset_id with a slash", lambda p: p.update(dataset_id="a/b"), "dataset_id"),
    ("missing name", lambda p: p.pop("name"), "name"),
    ("unknown format", lambda p: p.update(format="orc"), "format"),
    ("negative size", lambda p: p.update(size_bytes=-1), "size_bytes"),
    ("row_count not a number", lambda p: p.update(row_count="many"), "row_count"),
    ("no columns", lambda p: p.update(schema={"columns": []}), "schema.columns"),
    ("missing schema", lambda p: p.pop("schema"), "schema"),
    (
        "unknown column type",
        lambda p: p["schema"]["columns"][1].update(type="money"),
        "schema.columns.1.type",
    ),
    ("column without a name", lambda p: p["schema"]["columns"][2].pop("name"), "schema.columns.2.name"),
    (
        "duplicate column",
        lambda p: p["schema"]["columns"].append({"name": "amount", "type": "int"}),
        "schema.columns",
    ),
    ("relative storage path", lambda p: p.update(storage_path="sales/2024-01"), "storage_path"),
    ("unsupported scheme", lambda p: p.update(storage_path="ftp://host/x"), "storage_path"),
    ("empty tag", lambda p: p.update(tags=["ok", " "]), "tags"),
    ("metadata not an object", lambda p: p.update(metadata=["x"]), "metadata"),
    ("unknown field", lambda p: p.update(colour="blue"), "colour"),
]


@pytest.mark.parametrize(("case", "change", "field"), INVALID_PAYLOADS, ids=[c[0] for c in INVALID_PAYLOADS])
def test_invalid_registration_answers_422_naming_the_field(
    client: MetadataCenterClient, case: str, change: Any, field: str
) -> None:
    before = last_seq(client)
    payload = seed_payload()
    change(payload)
    with pytest.raises(MetadataCenterError) as error:
        client.register(payload)
    assert error.value.status == 422, case
    assert error.value.field == field
    assert field in error.value.message
    assert last_seq(client) == before


def test_body_that_is_not_json_answers_422(service: RunningMetadataCenter) -> None:
    response = requests.post(
        f"{service.url}/api/v1/datasets/register",
        data=b"{not json",
        headers={"X-API-Key": service.api_key, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422 and response.json()["field"] == "body"


@pytest.mark.parametrize(
    "key", [None, "", "wrong-key", "mck_" + "x" * 43], ids=["missing", "empty", "wrong", "wrong-shape"]
)
def test_writes_without_a_valid_key_answer_401_and_change_nothing(
    service: RunningMetadataCenter, client: MetadataCenterClient, key: str | None
) -> None:
    dataset = client.register(seed_payload())
    lineage_before = client.get_lineage(dataset["dataset_id"])
    before = last_seq(client)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    attempts = [
        ("POST", "/api/v1/datasets/register", json.dumps(seed_payload())),
        ("POST", "/api/v1/datasets/register", "{not json"),  # 401, not 422: nothing is parsed first
        (
            "PUT",
            f"/api/v1/lineage/{dataset['dataset_id']}",
            json.dumps({"lineage": {"downstream": {"models": ["m"]}}}),
        ),
        ("POST", "/api/v1/webhooks/subscribers", json.dumps({"url": "http://127.0.0.1:9/hook"})),
        ("GET", "/api/v1/webhooks/deliveries", None),
    ]
    for method, path, body in attempts:
        response = requests.request(method, service.url + path, data=body, headers=headers, timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"] == "unauthorized"
    assert last_seq(client) == before
    assert client.get_lineage(dataset["dataset_id"]) == lineage_before
    assert all(s["url"] != "http://127.0.0.1:9/hook" for s in _subscribers(service))
    with pytest.raises(MetadataCenterError) as error:
        service.client(api_key=key or "").register(seed_payload())
    assert error.value.status == 401 and "METADATA_CENTER_API_KEY" in error.value.message


def _subscribers(service: RunningMetadataCenter) -> list[dict[str, Any]]:
    response = requests.get(
        f"{service.url}/api/v1/webhooks/subscribers", headers={"X-API-Key": service.api_key}, timeout=10
    )
    response.raise_for_status()
    return response.json()["items"]


def test_reads_are_open_by_default(service: RunningMetadataCenter, client: MetadataCenterClient) -> None:
    registered = client.register(seed_payload())
    anonymous = service.client(api_key="")
    assert anonymous.get(registered["dataset_id"])["version"] == 1
    assert anonymous.list(after=registered["seq"] - 1).items[0]["seq"] == registered["seq"]
    assert anonymous.get_lineage(registered["dataset_id"])["entity_id"] == registered["dataset_id"]


def test_reads_require_the_key_when_configured(tmp_path: Path) -> None:
    with metadata_center(tmp_path / "platform", require_key_for_reads=True) as service:
        registered = service.client().register(seed_payload())
        for key in ("", "wrong"):
            anonymous = service.client(api_key=key)
            for read in (
                lambda c: c.list(),
                lambda c: c.get(registered["dataset_id"]),
                lambda c: c.get_lineage(registered["dataset_id"]),
            ):
                with pytest.raises(MetadataCenterError) as error:
                    read(anonymous)
                assert error.value.status == 401
        assert anonymous.health()["status"] == "ok"  # probes stay open
        assert service.client().get(registered["dataset_id"])["version"] == 1
        assert [i["seq"] for i in service.client().list()] == [registered["seq"]]


def test_lineage_record_merge_and_replace(client: MetadataCenterClient) -> None:
    payload = seed_payload(
        metadata={"etl_job_id": "etl_sales_001", "source_tables": ["raw_db.orders", "raw_db.customers"]}
    )
    dataset_id = payload["dataset_id"]
    client.register(payload)
    record = client.get_lineage(dataset_id)
    assert record["entity_type"] == "dataset" and record["entity_id"] == dataset_id
    assert record["lineage"] == {
        "upstream": {
            "source_tables": ["raw_db.orders", "raw_db.customers"],
            "etl_jobs": ["etl_sales_001"],
            "datasets": [],
        },
        "downstream": {"datasets": [], "training_jobs": [], "models": []},
    }

    # A lineage record, PUT twice with overlaps: merged, nothing duplicated, nothing lost.
    client.put_lineage(
        dataset_id,
        {
            "entity_type": "dataset",
            "entity_id": dataset_id,
            "lineage": {
                "downstream": {
                    "training_jobs": ["cube_job_sales_forecast_v1"],
                    "models": ["sales_forecast_lstm_v1.0"],
                }
            },
        },
    )
    merged = client.put_lineage(
        dataset_id,
        {
            "lineage": {
                "downstream": {
                    "training_jobs": ["cube_job_sales_forecast_v1", "cube_job_v2"],
                    "datasets": [f"{dataset_id}__training"],
                }
            }
        },
    )
    assert merged["lineage"]["downstream"] == {
        "datasets": [f"{dataset_id}__training"],
        "training_jobs": ["cube_job_sales_forecast_v1", "cube_job_v2"],
        "models": ["sales_forecast_lstm_v1.0"],
    }
    assert merged["lineage"]["upstream"]["etl_jobs"] == ["etl_sales_001"]
    assert client.get_lineage(dataset_id)["lineage"] == merged["lineage"]

    replaced = client.put_lineage(
        dataset_id, {"lineage": {"upstream": {"etl_jobs": ["etl_sales_002"]}}}, replace=True
    )
    assert replaced["lineage"]["upstream"] == {
        "source_tables": [],
        "etl_jobs": ["etl_sales_002"],
        "datasets": [],
    }
    assert replaced["lineage"]["downstream"] == {"datasets": [], "training_jobs": [], "models": []}

    # Entities other than datasets (a model), and extra kinds, are recorded too.
    model = client.put_lineage(
        "models/sales_forecast_lstm_v1.0",
        {
            "entity_type": "model",
            "lineage": {"upstream": {"datasets": [dataset_id], "training_jobs": ["cube_job_v2"]}},
        },
    )
    assert model["entity_type"] == "model" and model["lineage"]["upstream"]["training_jobs"] == [
        "cube_job_v2"
    ]
    assert client.get_lineage("models/sales_forecast_lstm_v1.0") == model

    for bad, field in (
        ({"entity_id": "someone_else", "lineage": {}}, "entity_id"),
        ({"lineage": {"downstream": {"Bad Kind": ["x"]}}}, "lineage"),
        ({"lineage": {"downstream": {"models": "not-a-list"}}}, "lineage.downstream.models"),
        ({"lineage": {"sideways": {}}}, "lineage.sideways"),
    ):
        with pytest.raises(MetadataCenterError) as error:
            client.put_lineage(dataset_id, bad)
        assert (error.value.status, error.value.field) == (422, field)
    with pytest.raises(MetadataCenterError) as missing:
        client.get_lineage("never_seen")
    assert missing.value.status == 404


def test_client_reports_a_service_that_is_down() -> None:
    client = MetadataCenterClient(f"http://127.0.0.1:{free_port()}", "key")
    for call in (client.health, lambda: client.register(seed_payload()), lambda: client.list()):
        with pytest.raises(MetadataCenterUnavailable) as error:
            call()
        assert "unreachable" in error.value.message


# -- the CLI ------------------------------------------------------------------------------------------


def run_cli(service_url: str, api_key: str, *args: str) -> Any:
    runner = CliRunner(env={"METADATA_CENTER_URL": service_url, "METADATA_CENTER_API_KEY": api_key})
    return runner.invoke(datasets_cli, list(args), catch_exceptions=False)


def test_cli_register_list_show_lineage(service: RunningMetadataCenter, tmp_path: Path) -> None:
    payload = seed_payload()
    file = tmp_path / "dataset.json"
    file.write_text(json.dumps(payload, ensure_ascii=False))
    registered = run_cli(service.url, service.api_key, "register", str(file))
    assert registered.exit_code == 0, registered.output
    assert registered.stdout.startswith(f"registered {payload['dataset_id']} version 1 (seq ")
    seq = int(registered.stdout.rsplit("seq ", 1)[1].rstrip(")\n"))

    listed = run_cli(service.url, service.api_key, "list", "--after", str(seq - 1))
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["seq", "dataset_id", "version", "format", "rows", "registered_at"]
    assert lines[1].split()[:5] == [str(seq), payload["dataset_id"], "1", "parquet", "10000000"]
    as_json = json.loads(
        run_cli(service.url, service.api_key, "list", "--after", str(seq - 1), "--json").stdout
    )
    assert as_json["items"][0]["seq"] == seq and as_json["next_after"] == seq

    shown = run_cli(service.url, service.api_key, "show", payload["dataset_id"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["storage"]["bucket"] == "etl-output"
    lineage = run_cli(service.url, service.api_key, "lineage", payload["dataset_id"])
    assert json.loads(lineage.stdout)["lineage"]["upstream"]["etl_jobs"] == ["etl_sales_001"]


def test_cli_errors_are_one_line_with_nonzero_exit(service: RunningMetadataCenter, tmp_path: Path) -> None:
    bad = seed_payload()
    bad["schema"]["columns"][0]["type"] = "money"
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad))
    good_file = tmp_path / "good.json"
    good_file.write_text(json.dumps(seed_payload()))
    not_json = tmp_path / "broken.json"
    not_json.write_text("{oops")
    down = f"http://127.0.0.1:{free_port()}"
    cases = [
        ((service.url, service.api_key, "register", str(bad_file)), ["422", "schema.columns.0.type"]),
        ((service.url, "wrong-key", "register", str(good_file)), ["401", "invalid API key"]),
        ((down, service.api_key, "list"), ["unreachable", down]),
        ((service.url, service.api_key, "show", "no_such_dataset"), ["404", "not registered"]),
        ((service.url, service.api_key, "register", str(not_json)), ["invalid JSON"]),
        ((service.url, service.api_key, "register", str(tmp_path / "missing.json")), ["missing.json"]),
    ]
    for args, expected in cases:
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result.output)
        error_lines = result.stderr.strip().splitlines()
        assert len(error_lines) == 1 and error_lines[0].startswith("Error: "), result.stderr
        for text in expected:
            assert text in error_lines[0], (text, error_lines[0])


def test_the_reusable_fixture_unpacks_to_url_key_and_secret(request: pytest.FixtureRequest) -> None:
    service: RunningMetadataCenter = request.getfixturevalue("metadata_center_service")
    url, api_key, webhook_secret = service
    assert url.startswith("http://127.0.0.1:") and webhook_secret.startswith("whsec_")
    assert MetadataCenterClient(url, api_key).register(seed_payload())["seq"] == 1


# -- limits and refusals (docs/metadata_center.md "Limits and refusals") -------------------------------

TOO_BIG = 2**63  # one past the largest BIGINT


def nested(depth: int) -> str:
    """JSON text of `depth` nested objects (built as text: json.dumps itself recurses)."""
    return '{"a":' * depth + "1" + "}" * depth


def register_raw(service: RunningMetadataCenter, body: str | bytes, **headers: str) -> requests.Response:
    return requests.post(
        f"{service.url}/api/v1/datasets/register",
        data=body,
        headers={"X-API-Key": service.api_key, "Content-Type": "application/json", **headers},
        timeout=60,
    )


def with_metadata_text(payload: dict[str, Any], metadata_json: str) -> str:
    """The payload as JSON text with `metadata` replaced by the given JSON text."""
    text = json.dumps({**payload, "metadata": "__METADATA__"})
    return text.replace('"__METADATA__"', metadata_json)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"/api/v1/datasets?after={TOO_BIG}", "after"),
        ("GET", f"/api/v1/datasets?after={10**30}", "after"),
        ("GET", f"/api/v1/datasets/sales_training_2024_01?version={TOO_BIG}", "version"),
        ("GET", f"/api/v1/datasets/sales_training_2024_01?version={2**31}", "version"),
        ("GET", f"/api/v1/webhooks/deliveries?seq={TOO_BIG}", "seq"),
        ("GET", f"/api/v1/webhooks/deliveries?after_id={TOO_BIG}", "after_id"),
        ("DELETE", f"/api/v1/webhooks/subscribers/{TOO_BIG}", "subscriber_id"),
        ("POST", f"/api/v1/webhooks/deliveries/{TOO_BIG}/retry", "delivery_id"),
    ],
)
def test_integers_beyond_64_bits_answer_422_naming_the_field(
    service: RunningMetadataCenter, method: str, path: str, field: str
) -> None:
    response = requests.request(
        method, service.url + path, headers={"X-API-Key": service.api_key}, timeout=10
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


@pytest.mark.parametrize("field", ["size_bytes", "row_count"])
def test_registered_integers_beyond_64_bits_answer_422(
    service: RunningMetadataCenter, client: MetadataCenterClient, field: str
) -> None:
    before = last_seq(client)
    for value in (TOO_BIG, 10**40):
        response = register_raw(service, json.dumps(seed_payload(**{field: value})))
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    # The largest BIGINT is stored and served as is.
    registered = client.register(seed_payload(**{field: TOO_BIG - 1}))
    assert client.get(registered["dataset_id"])[field] == TOO_BIG - 1
    assert last_seq(client) == before + 1
    assert client.list(after=2**63 - 1).items == []


@pytest.mark.parametrize("depth", [33, 500, 900, 5000])
def test_deeply_nested_metadata_answers_422(
    service: RunningMetadataCenter, client: MetadataCenterClient, depth: int
) -> None:
    before = last_seq(client)
    response = register_raw(service, with_metadata_text(seed_payload(), nested(depth)))
    assert response.status_code == 422, response.text[:300]
    assert response.json()["field"] in ("metadata", "body")
    if depth < 1000:  # deeper than the JSON parser's recursion allows: refused as a body that does not parse
        assert response.json()["field"] == "metadata" and "32 levels" in response.json()["message"]
    assert last_seq(client) == before


def test_metadata_nested_32_levels_is_accepted(service: RunningMetadataCenter) -> None:
    response = register_raw(service, with_metadata_text(seed_payload(), nested(31)))
    assert response.status_code == 201, response.text[:300]


@pytest.mark.parametrize("length", [129, 210, 255])
def test_a_dataset_id_longer_than_128_characters_answers_422(
    client: MetadataCenterClient, length: int
) -> None:
    before = last_seq(client)
    with pytest.raises(MetadataCenterError) as error:
        client.register(seed_payload("d" * length))
    assert error.value.status == 422 and error.value.field == "dataset_id"
    assert "128" in error.value.message
    assert last_seq(client) == before
    assert client.register(seed_payload("d" * 128))["version"] >= 1


def test_a_body_over_the_limit_answers_413_and_stores_nothing(
    service: RunningMetadataCenter, client: MetadataCenterClient
) -> None:
    before = last_seq(client)
    ten_mb = json.dumps(seed_payload(metadata={"blob": "x" * 10_000_000}))
    response = register_raw(service, ten_mb)
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"] == "payload_too_large"
    assert "METADATA_CENTER_MAX_BODY_BYTES" in response.json()["message"]
    # Sent chunked, without a Content-Length: counted as it arrives.
    chunks = (ten_mb[i : i + 65536].encode() for i in range(0, len(ten_mb), 65536))
    response = register_raw(service, chunks)  # type: ignore[arg-type]
    assert response.status_code == 413, response.text[:300]
    # Lineage bodies too.
    response = requests.put(
        f"{service.url}/api/v1/lineage/big",
        data=json.dumps({"lineage": {"upstream": {"datasets": ["x" * 1000] * 2000}}}),
        headers={"X-API-Key": service.api_key, "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert last_seq(client) == before


def test_list_pages_never_inline_large_metadata(
    service: RunningMetadataCenter, client: MetadataCenterClient
) -> None:
    large = {"blob": "y" * 600_000, "etl_job_id": "etl_big"}
    small = {"etl_job_id": "etl_small"}
    big = client.register(seed_payload(metadata=large))
    little = client.register(seed_payload(metadata=small))
    anonymous = service.client(api_key="")
    page = anonymous.list(after=big["seq"] - 1)
    by_seq = {item["seq"]: item for item in page.items}
    truncated = by_seq[big["seq"]]
    assert truncated["metadata_truncated"] is True
    assert truncated["payload"]["metadata"] == {
        "truncated": True,
        "size_bytes": len(json.dumps(large, separators=(",", ":"))),
    }
    assert truncated["payload"]["dataset_id"] == big["dataset_id"]  # the rest of the payload is there
    assert by_seq[little["seq"]]["payload"]["metadata"] == small
    assert "metadata_truncated" not in by_seq[little["seq"]]
    # The detail endpoint serves the whole metadata.
    assert anonymous.get(big["dataset_id"])["metadata"] == large
    raw = requests.get(f"{service.url}/api/v1/datasets", params={"after": big["seq"] - 1}, timeout=30)
    assert len(raw.content) < 100_000


def test_the_body_limit_is_configurable(tmp_path: Path) -> None:
    with metadata_center(tmp_path / "platform", max_body_bytes=4096) as service:
        small = json.dumps(seed_payload())
        assert register_raw(service, small).status_code == 201
        response = register_raw(service, json.dumps(seed_payload(metadata={"blob": "z" * 5000})))
        assert response.status_code == 413 and "4096" in response.json()["message"]
        assert [i["seq"] for i in service.client().list()] == [1]


def test_a_retry_with_the_same_idempotency_key_registers_once(
    service: RunningMetadataCenter, client: MetadataCenterClient
) -> None:
    key = f"retry-{uuid.uuid4().hex}"
    payload = seed_payload()
    first = client.register(payload, idempotency_key=key)
    # The reply was lost; the client sends the same request again (JSON spelled differently).
    again = register_raw(service, json.dumps(payload, indent=2, sort_keys=True), **{"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.json() == first
    assert client.get(payload["dataset_id"])["versions"] == [1]
    # The same key for another registration is refused, naming the header.
    other = register_raw(service, json.dumps({**payload, "name": "another"}), **{"Idempotency-Key": key})
    assert other.status_code == 422
    assert other.json()["field"] == "Idempotency-Key" and "another registration" in other.json()["message"]
    # A new key (or none) is a new version.
    assert client.register(payload, idempotency_key=f"{key}-2")["version"] == 2
    assert client.register(payload)["version"] == 3
    assert client.get(payload["dataset_id"])["versions"] == [1, 2, 3]
    assert register_raw(service, json.dumps(payload), **{"Idempotency-Key": "k" * 256}).status_code == 422


def test_concurrent_retries_with_one_idempotency_key_register_once(
    service: RunningMetadataCenter, client: MetadataCenterClient
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    key = f"concurrent-{uuid.uuid4().hex}"
    payload = seed_payload()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.register(payload, idempotency_key=key), range(8)))
    assert {a["seq"] for a in answers} == {answers[0]["seq"]}
    assert client.get(payload["dataset_id"])["versions"] == [1]


def test_an_idempotency_key_expires_after_24_hours(
    service: RunningMetadataCenter, client: MetadataCenterClient
) -> None:
    import sqlalchemy as sa

    from platform_assets.metadata_center.models import IdempotencyKey

    key = f"old-{uuid.uuid4().hex}"
    payload = seed_payload()
    client.register(payload, idempotency_key=key)
    engine = sa.create_engine(service.db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            # Through the model: its column type writes the timestamp as the service does on each backend.
            connection.execute(
                sa.update(IdempotencyKey)
                .where(IdempotencyKey.key == key)
                .values(created_at=datetime.now(UTC) - timedelta(hours=25))
            )
    finally:
        engine.dispose()
    assert client.register(payload, idempotency_key=key)["version"] == 2
    # …and the new answer is kept for the next 24 hours.
    assert client.register(payload, idempotency_key=key)["version"] == 2
