"""Train a small PyTorch model on a platform dataset version, with torch.distributed on CPU (gloo).

    torchrun --nproc-per-node 2 docs/examples/train_distributed.py --dataset reviews_corpus --task rating
    torchrun --nproc-per-node 2 docs/examples/train_distributed.py \
        --dataset user_purchase_training_set --version 1 --task purchase

- `rating`: predict a review's rating (1-5, scaled to [-1, 1]) from its embedding (`vector`, float32 [B, 384]).
- `purchase`: predict the purchase label from the Feast features of the training set (logistic regression).

Each process reads its own shard through `Dataset.to_torch` (rank and world size come from torch.distributed):
the shards are disjoint and together hold every row once per epoch, reshuffled each epoch by `set_epoch`.
Shards can differ by a row group, so the training loop runs under `Join`, which lets DistributedDataParallel
finish an epoch whose ranks have different batch counts. Rank 0 saves the model, records in the metadata
center which dataset version it trained on (`PUT /api/v1/lineage/{dataset}`: downstream training job and model;
and the model's own record, upstream `<dataset>@v<N>`), and writes a JSON report (`--report`).

The metadata center is METADATA_CENTER_URL (and METADATA_CENTER_API_KEY), as for every SDK call.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.join import Join
from torch.nn.parallel import DistributedDataParallel

from platform_assets.metadata_center.client import MetadataCenterClient
from platform_assets.sdk import Dataset

# Columns of the training set that are keys or the label, not features.
NOT_FEATURES = {"row_id", "user_id", "event_timestamp", "label"}
NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="A dataset id in the metadata center.")
    parser.add_argument("--version", type=int, default=None, help="Its version (default: the latest).")
    parser.add_argument("--task", choices=("rating", "purchase"), required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per process.")
    parser.add_argument("--model-dir", default="models", help="Where rank 0 saves the model.")
    parser.add_argument("--job-id", default=None, help="The training job's id (default: made from the time).")
    parser.add_argument("--report", default=None, help="Rank 0 writes a JSON report here.")
    return parser.parse_args()


def task_columns(dataset: Dataset, task: str) -> tuple[str, list[str], str]:
    """(id column, feature columns, target column) of the task on this dataset."""
    if task == "rating":
        return "review_id", ["vector"], "rating"
    features = [
        c["name"]
        for c in dataset.columns
        if c["name"] not in NOT_FEATURES and c["type"].split("(")[0] in NUMERIC
    ]
    return "row_id", features, "label"


def inputs_and_target(batch: dict[str, Any], features: list[str], target: str, task: str) -> tuple[Any, Any]:
    if task == "rating":
        return batch["vector"], (batch[target].float() - 3.0) / 2.0
    columns = [torch.nan_to_num(batch[name].double()).float().unsqueeze(1) for name in features]
    # Features live on very different scales (counts, amounts): a log keeps the example's SGD stable.
    return torch.log1p(torch.cat(columns, dim=1).clamp(min=0)), batch[target].float()


def main() -> None:
    args = arguments()
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)

    dataset = Dataset.get(args.dataset, version=args.version)
    id_column, features, target = task_columns(dataset, args.task)
    loader = dataset.to_torch(
        batch_size=args.batch_size,
        columns=[id_column, *features, target],
        seed=args.seed,
        num_workers=args.num_workers,
    )
    width = 384 if args.task == "rating" else len(features)
    model = DistributedDataParallel(torch.nn.Linear(width, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.MSELoss() if args.task == "rating" else torch.nn.BCEWithLogitsLoss()

    losses, seen = [], []
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        total = torch.zeros(2, dtype=torch.float64)  # loss sum, rows
        with Join([model]):
            for batch in loader:
                x, y = inputs_and_target(batch, features, target, args.task)
                loss = loss_fn(model(x).squeeze(1), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += torch.tensor([loss.item() * len(y), len(y)], dtype=torch.float64)
                if epoch == 0:
                    ids = batch[id_column]  # text ids come as a list, numbers as a tensor
                    seen.extend(str(i) for i in (ids if isinstance(ids, list) else ids.tolist()))
        dist.all_reduce(total)
        losses.append(float(total[0] / total[1]))
        if rank == 0:
            print(f"epoch {epoch}: loss {losses[-1]:.4f} over {int(total[1])} rows", flush=True)

    shards: list[Any] = [None] * world_size
    dist.all_gather_object(shards, seen)
    if rank == 0:
        record(args, dataset, model.module, losses, shards)
    dist.destroy_process_group()


def record(
    args: argparse.Namespace,
    dataset: Dataset,
    model: torch.nn.Module,
    losses: list[float],
    shards: list[list[str]],
) -> None:
    """Save the model, record the lineage in the metadata center, write the report."""
    job_id = args.job_id or f"train-{dataset.dataset_id}-v{dataset.version}-{int(time.time())}"
    model_name = f"{job_id}-model"
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = model_dir / f"{model_name}.pt"
    torch.save(model.state_dict(), model_path)
    trained_on = f"{dataset.dataset_id}@v{dataset.version}"
    client = MetadataCenterClient()
    client.put_lineage(
        dataset.dataset_id,
        {
            "entity_type": "dataset",
            "lineage": {"downstream": {"training_jobs": [job_id], "models": [model_name]}},
        },
    )
    client.put_lineage(
        model_name,
        {
            "entity_type": "model",
            "lineage": {"upstream": {"datasets": [trained_on], "training_jobs": [job_id]}},
        },
    )
    report = {
        "dataset": dataset.dataset_id,
        "version": dataset.version,
        "rows": dataset.row_count,
        "rows_per_rank": [len(shard) for shard in shards],
        "distinct_rows": len({row for shard in shards for row in shard}),
        "losses": losses,
        "job_id": job_id,
        "model": model_name,
        "model_path": str(model_path),
    }
    print(json.dumps(report), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
