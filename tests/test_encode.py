import os

import numpy as np

from core.data.dsprites import DSprites
from core.explore.encode import encodings_path, load_or_encode
from core.training.loop import train
from tests.tiny import tiny_config


def test_encodings_are_cached_in_the_run_folder_and_refreshed_after_training(tmp_path):
    data = DSprites()
    run = train(tiny_config("enc", steps=5), tmp_path, progress=False, dataset=data)
    first = load_or_encode(run, "val", limit=50, dataset=data)
    path = encodings_path(run, "val", 50)
    assert first["mu"].shape == (50, 8) and np.isin(first["index"], data.indices("val")).all()
    np.testing.assert_array_equal(first["attributes"], data.attributes.values[first["index"]])
    stamp = path.stat().st_mtime_ns
    load_or_encode(run, "val", limit=50, dataset=data)
    assert path.stat().st_mtime_ns == stamp  # read back, not recomputed
    os.utime(run.checkpoint_path, ns=(stamp + 10**9, stamp + 10**9))  # a newer checkpoint
    load_or_encode(run, "val", limit=50, dataset=data)
    assert path.stat().st_mtime_ns != stamp
