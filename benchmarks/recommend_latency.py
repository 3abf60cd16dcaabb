"""Top-k recommendation latency over all 1,682 MovieLens-100k items: through gRPC (front door -> Ray Serve
replica -> Recommender) against the same model in-process (worker.engine.Recommender), in the same run.

It starts an embedded server on a temporary data directory, registers ../shared/data/movielens-100k, trains the
dot-product model through a job (2 epochs: latency does not depend on quality), then times, alternating the two
sides call by call so a busy machine slows both alike:
  - one user, top 10 (RecommendRequest.user_id / Recommender.recommend([user]));
  - a batch of 100 users, top 10 each, in one call (RecommendRequest.users / Recommender.recommend(users));
  - a per-item Python loop over the 1,682 items for one user: what the vectorised product replaces.

    python benchmarks/recommend_latency.py            # 200 calls per case
    python benchmarks/recommend_latency.py --quick    # 20 calls per case: checks that it runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SHARED_DATA  # noqa: E402

from fineserve.v1 import (  # noqa: E402
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from harness.launcher import ServerProcess  # noqa: E402
from worker.engine import Recommender  # noqa: E402

K = 10


def train_model(target: str) -> None:
    with grpc.insecure_channel(target) as ch:
        ds = datasets_pb2_grpc.DatasetsStub(ch).RegisterDataset(datasets_pb2.RegisterDatasetRequest(
            name="ml-100k", layout=datasets_pb2.RATINGS_CSV, uri=str(SHARED_DATA / "movielens-100k")), timeout=60)
        training = training_pb2_grpc.TrainingStub(ch)
        job = training.CreateFineTuneJob(training_pb2.CreateFineTuneJobRequest(
            task=training_pb2.COLLABORATIVE_FILTERING, model_name="ml", dataset_id=ds.id,
            collab=training_pb2.CollabOptions(items_file="u.item"),
            hyperparameters=training_pb2.Hyperparameters(epochs=2),
            resources=common_pb2.Resources(cpu_only=True)), timeout=30)
        while job.state not in (training_pb2.SUCCEEDED, training_pb2.FAILED, training_pb2.CANCELLED):
            time.sleep(1)
            job = training.GetJob(training_pb2.GetJobRequest(id=job.id), timeout=10)
        if job.state != training_pb2.SUCCEEDED:
            raise SystemExit(f"training failed: {job.error}")


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def python_loop(rec: Recommender, user: str, k: int) -> list[tuple[str, float]]:
    """The baseline the vectorised product replaces: one forward pass per unrated item."""
    u = rec.user_index[user]
    start, end = int(rec.indptr[u]), int(rec.indptr[u + 1])
    seen = set(rec.seen_items[start:end].tolist())
    scores = []
    with torch.inference_mode():
        for i in range(len(rec.item_ids)):
            if i not in seen:
                scores.append((float(rec.model(torch.tensor([[u, i]]))[0]), rec.item_ids[i]))
    return [(item, s) for s, item in sorted(scores, reverse=True)[:k]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls = 20 if args.quick else 200
    torch.set_num_threads(1)  # as a replica would run beside others; the same for both sides
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", "--allowed-root", str(SHARED_DATA)).start()
        try:
            train_model(server.target)
            rec = Recommender.load(Path(tmp) / "data/models/default/ml/1")
            users = rec.user_ids[:100]
            with grpc.insecure_channel(server.target) as ch:
                stub = inference_pb2_grpc.InferenceStub(ch)
                ref = common_pb2.ModelRef(name="ml")
                one = inference_pb2.RecommendRequest(model=ref, user_id=users[0], k=K)
                batch = inference_pb2.RecommendRequest(model=ref, users=inference_pb2.UserIds(ids=users), k=K)
                grpc_items = [i.item_id for i in stub.Recommend(one, timeout=60).items]  # loads the model
                assert grpc_items == [i for i, _ in rec.recommend([users[0]], K)[0].items], "sides disagree"
                assert {i for i, _ in python_loop(rec, users[0], K)} == set(grpc_items), "loop disagrees"
                cases = [
                    ("1 user, top 10", lambda: rec.recommend([users[0]], K), lambda: stub.Recommend(one, timeout=60)),
                    ("100 users, top 10 each", lambda: rec.recommend(users, K),
                     lambda: stub.Recommend(batch, timeout=60)),
                ]
                rows = []
                for name, local, remote in cases:
                    local_ms, remote_ms = [], []
                    for _ in range(calls):
                        local_ms.append(timed(local))
                        remote_ms.append(timed(remote))
                    rows.append((name, statistics.median(local_ms), statistics.median(remote_ms)))
                loop_ms = statistics.median(timed(lambda: python_loop(rec, users[0], K))
                                            for _ in range(max(3, calls // 20)))
        finally:
            server.stop()
    print(f"\nTop-{K} over all {len(rec.item_ids)} items, median of {calls} calls each (ms); "
          f"torch {torch.__version__}, 1 intra-op thread in-process\n")
    print(f"{'case':<26} {'in-process':>11} {'gRPC':>9} {'gRPC / in-process':>18}")
    for name, local, remote in rows:
        print(f"{name:<26} {local:>11.3f} {remote:>9.3f} {remote / local:>17.1f}x")
    one_local = rows[0][1]
    print(f"{'1 user, per-item loop':<26} {loop_ms:>11.3f} {'-':>9} {'':>18}   "
          f"({loop_ms / one_local:.0f}x the vectorised in-process call)")
    print(f"{'per user in the batch':<26} {rows[1][1] / 100:>11.3f} {rows[1][2] / 100:>9.3f}")


if __name__ == "__main__":
    main()
