"""segmentation: camera/image_raw -> mask (mono8, 255 = object, same header as the image)."""
from __future__ import annotations

from sensor_msgs.msg import Image

from reconphys_ros.core.segment import SEGMENTER_BACKENDS, make_segmenter
from reconphys_ros.ros.conversions import image_to_numpy, numpy_to_image
from reconphys_ros.ros.guarded_node import GuardedNode
from reconphys_ros.ros.parameters import ParamSpec, declare_parameters
from reconphys_ros.ros.qos import image_qos
from reconphys_ros.ros.spin import run_node

NAME = "segmentation"
PARAMS = [
    ParamSpec("backend", "str", "segmentation backend", choices=SEGMENTER_BACKENDS, read_only=True),
    ParamSpec("sam_checkpoint", "str", "path to a SAM checkpoint (backend sam)", read_only=True),
    ParamSpec("sam_model_type", "str", "SAM registry key matching the checkpoint",
              choices=("vit_b", "vit_l", "vit_h", "default"), read_only=True),
    ParamSpec("device", "str", "torch device for SAM", choices=("cpu", "cuda"), read_only=True),
    ParamSpec("threshold", "float", "OpenCV backend: minimum RGB distance to the background model", 1.0, 255.0,
              read_only=True),
    ParamSpec("absorb_frames", "int", "OpenCV backend: still foreground becomes background after this many "
              "frames (0 never)", 0, 100000, read_only=True),
    ParamSpec("grabcut", "bool", "OpenCV backend: refine the object with GrabCut", read_only=True),
    ParamSpec("max_side", "int", "OpenCV backend: larger frames are segmented at this longer side (pixels) and "
              "the mask scaled back; 0 = native resolution", 0, 100000, read_only=True),
]


def build_segmenter(p: dict):
    opencv = dict(threshold=p["threshold"], absorb_frames=p["absorb_frames"], grabcut=p["grabcut"],
                  max_side=p["max_side"] or None)
    if p["backend"] == "sam":
        return make_segmenter("sam", checkpoint=p["sam_checkpoint"] or None, model_type=p["sam_model_type"],
                              device=p["device"], **opencv)
    return make_segmenter("opencv", **opencv)


class SegmentationNode(GuardedNode):
    def __init__(self, **node_kwargs):
        super().__init__(NAME, **node_kwargs)
        self.params = declare_parameters(self, PARAMS, NAME)
        try:
            self.segmenter = build_segmenter(self.params)
        except (ImportError, FileNotFoundError) as exc:  # sam backend without package / checkpoint
            raise ValueError(str(exc)) from None
        self.mask_pub = self.create_publisher(Image, "mask", image_qos())
        self.create_subscription(Image, "camera/image_raw", self.on_image, image_qos())
        self.masks_published = 0
        self._size = None

    def on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_numpy(msg, encoding="rgb8")
        except ValueError as exc:
            self.dropped.drop("image", str(exc))
            return
        if rgb.ndim != 3:
            self.dropped.drop("image", f"encoding {msg.encoding!r} is not a colour image (rgb8 / bgr8)")
            return
        if self._size != rgb.shape[:2]:
            self.segmenter.reset()  # a new stream: the background model starts again
            self._size = rgb.shape[:2]
        mask = self.segmenter.segment(rgb)
        self.mask_pub.publish(numpy_to_image(mask, "mono8", msg.header))
        self.masks_published += 1


def main(args=None) -> None:
    run_node(SegmentationNode, args)


if __name__ == "__main__":
    main()
