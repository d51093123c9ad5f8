"""python -m emotion batch --ray: the same table from Ray Data, on a local instance with 2 workers."""

import os
import shutil

import pytest

from emotion.app import cli
from emotion.batch.sinks import read_rows
from tests.test_batch import assert_same_rows

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[data]')")


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine only: 2 CPUs, no dashboard, no usage report, the loopback address."""
    from emotion.batch.distributed import init_ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    init_ray(None, num_cpus=2)
    yield
    ray.shutdown()


def test_ray_gives_the_local_rows(local_ray, tiny_model, batch_inputs, speech_file, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(batch_inputs, folder)
    shutil.copy(speech_file, folder / "speech.wav")
    common = [folder, "--model-dir", tiny_model, "--segment", "--no-progress"]
    local, distributed = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert cli.main(["batch", *map(str, common), "-o", str(local)]) == 1
    assert cli.main(["batch", *map(str, common), "-o", str(distributed), "--ray",
                     "--replicas", "2", "--cpus-per-replica", "1"]) == 1
    rows = read_rows(distributed)
    assert any(r["segment"] == 1 for r in rows) and sum(bool(r["error"]) for r in rows) == 3
    assert_same_rows(read_rows(local), rows)
