"""Camera frames to text (zxing-cpp) and text to identities (signed tokens).

Pure functions over numpy arrays and bytes: no I/O, no network, nothing of ours imported.
"""

from decoder.frames import FrameDecoder, FrameResult, FrameStatus, decode_frames

__all__ = ["FrameDecoder", "FrameResult", "FrameStatus", "decode_frames"]
