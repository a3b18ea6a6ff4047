"""Camera frames to text (zxing-cpp) and text to identities (signed tokens).

Pure functions over numpy arrays and bytes: no I/O, no network, nothing of ours imported.
"""

from decoder.frames import FrameDecoder, FrameResult, FrameStatus, decode_frames, frame_tokens
from decoder.tokens import (
    TOKEN_LEN,
    DecoderError,
    KeyRing,
    Kind,
    RevocationList,
    Status,
    TokenBatch,
    TokenResult,
    issue_token,
    verify_token,
    verify_tokens,
)

__all__ = [
    "TOKEN_LEN",
    "DecoderError",
    "FrameDecoder",
    "FrameResult",
    "FrameStatus",
    "KeyRing",
    "Kind",
    "RevocationList",
    "Status",
    "TokenBatch",
    "TokenResult",
    "decode_frames",
    "frame_tokens",
    "issue_token",
    "verify_token",
    "verify_tokens",
]
