"""kafka-python's receive path for large fetches, with fewer copies of the bytes.

kafka-python 3.0.12 copies every fetched byte several times under the GIL before a
record is read: the socket read 4,096 bytes at a time into new bytes objects, joined;
each piece sliced, then written into the response's frame; the frame read out whole
(a bytearray slice, then bytes of it) for the decoder, which copies the records field
out of that once more. Timed alone, those copies cost 0.1-0.4 us a packed event (83
bytes), most of it on the client's IO thread, holding the GIL that the worker needs.

`install()` changes two things, for every kafka-python client of the process:

- the plain TCP transport reads the socket into one reused buffer of RECEIVE_BYTES, up
  to its size a readable event, and hands the protocol a view of it (the protocol copies
  what it keeps before the next read);
- the protocol writes each piece of a response straight into the response's frame, and
  the decoder reads the frame in place: a fetched byte is copied once by the kernel
  into the buffer, once into the frame, and once out of it as the records' bytes.

The same bytes, however the socket splits them, give the same responses and errors. Each
change applies only to a kafka-python whose classes have the methods it replaces; for
another version `install` changes nothing and returns False.
"""

from __future__ import annotations

RECEIVE_BYTES = 1 << 20  # one readable event reads up to this much of a fetch response


def install() -> bool:
    """Both changes, once; True if both apply to this kafka-python (else neither is made)."""
    try:
        from kafka.net import transport
        from kafka.protocol import parser
        from kafka.protocol.frame import KafkaBytes
    except ImportError:
        return False
    tcp = getattr(transport, "KafkaTCPTransport", None)
    protocol = getattr(parser, "KafkaProtocol", None)
    if tcp is None or protocol is None or not all(
            hasattr(cls, name) for cls, name in (
                (tcp, "_sock_recv"), (protocol, "receive_bytes"),
                (protocol, "_validate_frame_size"), (protocol, "_process_response"),
                (protocol, "_reset_buffer"), (KafkaBytes, "tell"))):
        return False
    if getattr(protocol.receive_bytes, "_qrtrace", False):
        return True
    tcp._sock_recv = _socket_reader(transport.Errors, transport.log)
    protocol.receive_bytes = _frame_writer(_frame_class(KafkaBytes))
    return True


def _socket_reader(errors, log):
    def _sock_recv(self):
        """(a view of what the socket holds, up to RECEIVE_BYTES; None or an error)"""
        view = getattr(self, "_qrtrace_recv", None)
        if view is None:
            view = self._qrtrace_recv = memoryview(bytearray(RECEIVE_BYTES))
        filled, err = 0, None
        while filled < RECEIVE_BYTES:
            try:
                n = self._sock.recv_into(view[filled:])
            except (BlockingIOError, InterruptedError):
                break
            except BaseException as exc:
                log.exception("%s: Error receiving network data closing socket", self)
                err = errors.KafkaConnectionError(exc)
                break
            if not n:  # the peer closed: as kafka-python says it
                log.error("%s: socket disconnected", self)
                err = errors.KafkaConnectionError("socket disconnected")
                break
            filled += n
        # a full buffer leaves the rest in the socket, readable at the next event
        return view[:filled].toreadonly(), err

    _sock_recv._qrtrace = True
    return _sock_recv


def _frame_class(KafkaBytes):
    class Frame(KafkaBytes):
        """A response's bytes. Read whole (the decoder's call), it gives a view of
        itself instead of a copy; a read of n bytes (the header's) copies them once."""

        def read(self, nbytes=None):
            start = self._idx
            self._idx = len(self) if nbytes is None else min(len(self), start + nbytes)
            view = memoryview(self)[start:self._idx]
            return view if nbytes is None else bytes(view)

    return Frame


def _frame_writer(Frame):
    def receive_bytes(self, data):
        """kafka-python's KafkaProtocol.receive_bytes: the responses that `data` (bytes
        or a view) completes, each piece written into its frame without a copy first."""
        view = memoryview(data)
        at, end = 0, len(view)
        responses = []
        while at < end:
            if not self._receiving:
                take = min(4 - self._header.tell(), end - at)
                self._header.write(view[at:at + take])
                at += take
                if self._header.tell() < 4:
                    break
                self._header.seek(0)
                size = int.from_bytes(self._header.read(4), "big", signed=True)
                self._validate_frame_size(size)
                self._rbuffer = Frame(size)
                self._receiving = True
            frame = self._rbuffer
            take = min(len(frame) - frame.tell(), end - at)
            frame.write(view[at:at + take])
            at += take
            if frame.tell() < len(frame):
                break
            self._receiving = False
            frame.seek(0)
            responses.append(self._process_response(frame))
            self._reset_buffer()
        return responses

    receive_bytes._qrtrace = True
    return receive_bytes
