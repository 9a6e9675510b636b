"""rosbag2 MCAP files written with rosbags carry our custom messages byte-identical to rclpy's CDR."""
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from reconphys_ros.bags import make_typestore
from reconphys_ros.msg import GaussianAsset, GripperCommand, PhysicsParams, SimStatus
from reconphys_ros.ros.conversions import asset_to_msg
from test.ros.helpers import random_asset


def _messages():
    asset = asset_to_msg(random_asset(300, num_anchors=20, seed=2))
    asset.header.stamp.sec = 5
    grip = GripperCommand(object_id="test_obj", position=0.02, max_effort=30.0, grasp_radius=0.05)
    grip.pose.position.z, grip.pose.orientation.w = 0.4, 1.0
    status = SimStatus(object_id="test_obj", real_time_factor=1.3, substeps=100, keeping_up=True, message="ok")
    return {"/asset": asset, "/physics": asset.physics, "/gripper/command": grip, "/sim/status": status}


def _type_name(msg) -> str:
    return f"reconphys_ros/msg/{type(msg).__name__}"


def test_rosbags_cdr_matches_rclpy():
    """Same bytes except CDR alignment padding, which Fast-CDR leaves uninitialised and rosbags zeroes."""
    store = make_typestore()
    for msg in _messages().values():
        raw = serialize_message(msg)
        ours = bytes(store.serialize_cdr(store.deserialize_cdr(raw, _type_name(msg)), _type_name(msg)))
        assert len(ours) == len(raw)
        differing = [i for i in range(len(raw)) if raw[i] != ours[i]]
        # Padding before an 8-aligned field spans < 8 bytes ending at a multiple of 8 (after the 4-byte CDR header),
        # so it may sit at offset 4 mod 8 but never 0 mod 8.
        assert all(ours[i] == 0 and (i - 4) % 8 != 0 for i in differing), "a difference outside padding"
        assert len(differing) <= 5 * 8  # at most 5 padding gaps (the asset: bools before 8-byte fields)
        assert deserialize_message(ours, type(msg)) == msg


def test_mcap_bag_roundtrip_byte_identical(tmp_path):
    store = make_typestore()
    messages = _messages()
    raw = {topic: serialize_message(msg) for topic, msg in messages.items()}
    path = tmp_path / "bag"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for i, (topic, msg) in enumerate(messages.items()):
            conn = writer.add_connection(topic, _type_name(msg), typestore=store)
            writer.write(conn, 1_000_000 * (i + 1), raw[topic])
    assert list(path.glob("*.mcap")), "no MCAP file written"
    with Reader(path) as reader:
        seen = {}
        for conn, _, data in reader.messages():
            seen[conn.topic] = bytes(data)
            assert conn.msgtype == _type_name(messages[conn.topic])
            assert conn.msgdef.data, "message definition missing from the bag"
    assert seen == raw
    back = deserialize_message(seen["/asset"], GaussianAsset)
    assert back == messages["/asset"]
    assert deserialize_message(seen["/physics"], PhysicsParams) == messages["/physics"]
