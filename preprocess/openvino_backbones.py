"""The scene ResNet-50 and the OpenPose graph as OpenVINO networks (float32, or int8 calibrated by NNCF).

Each IR is cached per key (preprocess/openvino_net.py): a process that finds it never builds the Keras model or
parses the GraphDef. int8 models are quantised from the float32 IR on ``calibration.calibration_frames``.
"""

from __future__ import annotations

from pathlib import Path

from .calibration import CALIBRATION_VERSION, N_CALIBRATION, calibration_frames
from .openvino_net import OpenVinoNet, cached_ir, core, quantize

POSE_CALIBRATION_SIZE = (1280, 720)  # frames of the shared clips' usual size, shrunk to the network's input


def scene_network(weights: str, width: int, height: int, precision: str) -> OpenVinoNet:
    """The frozen ResNet-50 (``weights`` as resolved by scene.resolve_weights: imagenet, none or a file path) for
    ``height x width`` frames: input (n, height, width, 3) ImageNet-preprocessed float32 -> (n, h/32, w/32, 2048).

    Parameters
    ----------
    weights : str
        "imagenet", "none" or a weights file path.
    width, height : int
        The frames' size in pixels.
    precision : str
        "float32", "bfloat16" or "int8".

    Returns
    -------
    net : OpenVinoNet
        (n, height, width, 3) float32 -> (n, h/32, w/32, 2048).
    """
    from .scene import build_backbone, prepare_frames, weights_identity

    key = {"weights": weights_identity(weights), "width": width, "height": height}

    def convert():
        import openvino as ov

        model, _ = build_backbone(weights, width, height, "float32")
        return ov.convert_model(
            model, example_input=prepare_frames(calibration_frames(width, height, 1), width, height)
        )

    xml = cached_ir("resnet50", key, convert)
    if precision == "int8":
        inputs = prepare_frames(calibration_frames(width, height), width, height)
        key = {**key, "precision": "int8", "calibration": CALIBRATION_VERSION}
        xml = cached_ir(
            "resnet50-int8", key, lambda: quantize(core().read_model(xml), (x[None] for x in inputs), N_CALIBRATION)
        )
    return OpenVinoNet(xml, precision)


def pose_network(path: Path, sha256: str, precision: str, input_size: int = 368) -> OpenVinoNet:
    """The OpenPose graph at ``path``: input (n, h, w, 3) BGR minus 127.5 -> (n, h/8, w/8, 57), as pose.PoseNet.
    int8 is calibrated at ``input_size`` on 16:9 frames.

    Parameters
    ----------
    path : Path
        The frozen graph.
    sha256 : str
        Its checksum (the IR cache key).
    precision : str
        "float32", "bfloat16" or "int8".
    input_size : int
        See pose.network_size.

    Returns
    -------
    net : OpenVinoNet
        (n, h, w, 3) float32 -> (n, h/8, w/8, 57).
    """

    def convert():
        import openvino as ov

        return ov.convert_model(str(path), input="image:0", output="Openpose/concat_stage7:0")

    xml = cached_ir("openpose", {"sha256": sha256}, convert)
    if precision == "int8":
        from .pose import network_input

        inputs = network_input(calibration_frames(*POSE_CALIBRATION_SIZE), input_size)
        key = {"sha256": sha256, "precision": "int8", "calibration": CALIBRATION_VERSION, "input_size": input_size}
        xml = cached_ir(
            "openpose-int8", key, lambda: quantize(core().read_model(xml), (x[None] for x in inputs), N_CALIBRATION)
        )
    return OpenVinoNet(xml, precision)
