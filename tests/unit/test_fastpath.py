"""The buffered protocol reader returns exactly what the unbuffered one would."""

import struct
import types

import pytest
import ts_fastpath
from ts.protocol import otf_message_handler


class ChunkedSocket:
    """A socket whose recv() returns the stream in the given chunk sizes."""

    def __init__(self, data: bytes, chunks: list[int]):
        self.data, self.chunks, self.calls = memoryview(data), list(chunks), 0

    def recv(self, size: int) -> bytes:
        self.calls += 1
        n = min(size, self.chunks.pop(0) if self.chunks else size, len(self.data))
        out, self.data = bytes(self.data[:n]), self.data[n:]
        return out


def frame(*fields: bytes) -> bytes:
    return b"".join(struct.pack("!i", len(f)) + f for f in fields)


@pytest.mark.parametrize("chunks", [[1] * 200, [3, 7, 11, 1000], [100000]])
def test_reads_the_same_fields_whatever_the_chunking(chunks):
    stream = b"I" + frame(b"req-1", b"content-type", b"application/json", b'{"data": [0.2, 0.6]}') + b"tail"
    reader = ts_fastpath.BufferedReader()
    sock = ChunkedSocket(stream, chunks)
    assert reader.read(sock, 1) == b"I"
    fields = []
    for _ in range(4):
        (length,) = struct.unpack("!i", reader.read(sock, 4))
        fields.append(bytes(reader.read(sock, length)))
    assert fields == [b"req-1", b"content-type", b"application/json", b'{"data": [0.2, 0.6]}']
    assert reader.read(sock, 4) == b"tail"


def test_one_recv_serves_many_fields():
    stream = frame(*[b"x" * 10] * 50)
    sock = ChunkedSocket(stream, [len(stream)])
    reader = ts_fastpath.BufferedReader()
    for _ in range(50):
        (length,) = struct.unpack("!i", reader.read(sock, 4))
        assert reader.read(sock, length) == b"x" * 10
    assert sock.calls == 1


def test_separate_sockets_keep_separate_buffers():
    reader = ts_fastpath.BufferedReader()
    a, b = ChunkedSocket(b"aaaa", [4]), ChunkedSocket(b"bbbb", [4])
    assert reader.read(a, 2) == b"aa"
    assert reader.read(b, 2) == b"bb"
    assert reader.read(a, 2) == b"aa"


def test_a_closed_socket_exits_like_torchserve():
    with pytest.raises(SystemExit):
        ts_fastpath.BufferedReader().read(ChunkedSocket(b"ab", [2]), 3)


def test_install_replaces_the_reader_once():
    module = types.SimpleNamespace(_retrieve_buffer=otf_message_handler._retrieve_buffer)
    assert ts_fastpath.install(module)
    installed = module._retrieve_buffer
    assert isinstance(installed.__self__, ts_fastpath.BufferedReader)
    assert ts_fastpath.install(module)
    assert module._retrieve_buffer is installed


def test_install_refuses_a_module_without_the_reader():
    assert not ts_fastpath.install(types.SimpleNamespace())


def test_the_patched_function_is_the_one_torchserve_calls():
    """If TorchServe ever reads through another function, this fails rather than the patch silently doing nothing."""
    import inspect

    source = inspect.getsource(otf_message_handler)
    assert source.count("conn.recv(") == 1
    assert "def _retrieve_buffer(conn, length)" in source
