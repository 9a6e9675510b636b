"""The shipped example clips: present, small, intact, and a falling object seen by view 0."""
import os

import numpy as np

from reconphys_ros.examples import EXAMPLES_DIR, list_examples, load_example
from training.data.objects import split_of
from training.data.storage import verify_sample


def test_examples_are_small_and_intact():
    names = list_examples()
    assert {"falling_cylinder", "falling_duck"} <= set(names)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(EXAMPLES_DIR) for f in fs
                if not f.endswith((".py", ".pyc")))
    assert total < 5e6
    for name in names:
        verify_sample(os.path.join(EXAMPLES_DIR, name))


def test_example_clip_content():
    clip = load_example("falling_cylinder")
    assert clip["rgb"].shape == (4, 30, 128, 128, 3) and clip["rgb"].dtype == np.uint8
    assert clip["mask"].shape == (4, 30, 128, 128)
    assert split_of(clip["object_id"]) == "test", "demo objects must be unseen in training"
    z = clip["anchors"][:, :, 2].mean(1)
    assert z[8] < z[0] - 0.1, "the object falls"
    # in view 0 the mask's centroid moves down the image (image y grows downwards) while it falls
    rows = [np.nonzero(m)[0].mean() for m in clip["mask"][0, :9]]
    assert rows[-1] > rows[0] + 5
    assert set(clip["params"]) == {"mass", "stiffness", "damping", "friction"}
