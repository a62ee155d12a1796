"""The fast worker-protocol codec reads and writes exactly what TorchServe's own does."""

import json
import struct
import types

import pytest
import torch
import ts_fastpath
from ts.context import Context, RequestProcessor
from ts.protocol import otf_message_handler
from ts.service import Service


class ChunkedSocket:
    """A socket whose recv() returns the stream in the given chunk sizes."""

    def __init__(self, data: bytes, chunks: list[int]):
        self.data, self.chunks, self.calls = memoryview(data), list(chunks), 0

    def recv(self, size: int) -> bytes:
        self.calls += 1
        n = min(size, self.chunks.pop(0) if self.chunks else size, len(self.data))
        out, self.data = bytes(self.data[:n]), self.data[n:]
        return out


def field(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


END = struct.pack("!i", -1)


def request(req_id: bytes, headers: list[tuple[bytes, bytes]], parameters: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """One request of an inference message, as TorchServe's frontend writes it."""
    out = field(req_id)
    for name, value in headers:
        out += field(name) + field(value)
    out += END
    for name, content_type, value in parameters:
        out += field(name) + field(content_type) + field(value)
    return out + END


LARGE = json.dumps({"data": [[1.5, 2.5]] * 3000}).encode()
JSON_BODY = (b"body", b"application/json", b'{"data": [0.2, 0.6]}')
ROUTE = [(b"Host", b"blue"), (b"X-Twinserve-Route", b"production"), (b"Content-Type", b"application/json")]
BATCHES = {
    "one request": [request(b"id-1", ROUTE, [JSON_BODY])],
    "a batch": [request(f"id-{i}".encode(), ROUTE, [JSON_BODY]) for i in range(48)],
    "no headers, no parameters": [request(b"id-1", [], [])],
    "text, bytes, bad JSON, bad UTF-8": [
        request(b"a", ROUTE, [(b"body", b"text/plain", "é".encode())]),
        request(b"b", ROUTE, [(b"body", b"application/octet-stream", b"\x00\x01")]),
        request(b"c", ROUTE, [(b"body", b"application/json", b'{"data": [0.2,')]),
        request(b"d", ROUTE, [(b"body", b"text/plain", b"\xff\xfe")]),
        request(b"e", ROUTE, [(b"body", b"", b"")]),
    ],
    "several parameters": [request(b"id", ROUTE, [JSON_BODY, (b"extra", b"text/csv", b"1,2")])],
    "empty request id and header value": [request(b"", [(b"X-Empty", b"")], [JSON_BODY])],
    "a large body": [request(b"big", ROUTE, [(b"body", b"application/json", LARGE)])],
}


def torchserve_reads(stream: bytes):
    """What TorchServe 0.12's own code makes of the stream: the command, and the request
    headers, inputs and ids that Service.predict hands on (to the handler and the encoder)."""
    sock = ChunkedSocket(stream, [])
    original = otf_message_handler._retrieve_buffer
    assert not isinstance(getattr(original, "__self__", None), ts_fastpath.BufferedReader)
    cmd, msg = otf_message_handler.retrieve_msg(sock)
    headers, inputs, ids = Service.retrieve_data_for_inference(msg)
    return cmd, ([h.get_request_properties() for h in headers], inputs, ids)


def as_compared(batch: ts_fastpath.Batch):
    assert all(h.get_response_status_code() == 200 and h.get_response_headers() == {} for h in batch.headers)
    return [h.get_request_properties() for h in batch.headers], batch.inputs, batch.ids


def patched():
    """Stand-ins for ts.protocol.otf_message_handler and ts.service, with the fast codec installed."""
    module = types.SimpleNamespace(
        _retrieve_buffer=otf_message_handler._retrieve_buffer,
        _retrieve_inference_msg=otf_message_handler._retrieve_inference_msg,
    )
    service = types.SimpleNamespace(
        create_predict_response=otf_message_handler.create_predict_response,
        Service=types.SimpleNamespace(retrieve_data_for_inference=Service.retrieve_data_for_inference),
    )
    assert ts_fastpath.install(module, service)
    return module, service


def fast_reads(stream: bytes, chunks: list[int]):
    module, _ = patched()
    sock = ChunkedSocket(stream, chunks)
    assert module._retrieve_buffer(sock, 1) == b"I"
    return module._retrieve_inference_msg(sock), sock


@pytest.mark.parametrize("name", BATCHES)
@pytest.mark.parametrize("chunks", [[100000000], [1] * 5000, [7, 13, 1000, 3], [1, 2, 9]])
def test_a_batch_reads_as_torchserve_reads_it(name, chunks):
    stream = b"I" + b"".join(BATCHES[name]) + END
    cmd, expected = torchserve_reads(stream)
    assert cmd == b"I"
    batch, _ = fast_reads(stream + b"next", chunks)
    assert as_compared(batch) == expected
    assert len(batch) == len(BATCHES[name])


def test_what_follows_a_batch_stays_in_the_buffer():
    stream = b"I" + b"".join(BATCHES["a batch"]) + END
    module, _ = patched()
    sock = ChunkedSocket(stream + stream, [len(stream) + 10, 100000])
    for _ in range(2):
        assert module._retrieve_buffer(sock, 1) == b"I"
        assert len(module._retrieve_inference_msg(sock)) == 48
    assert sock.calls == 2


@pytest.mark.parametrize("chunks", [[1] * 200, [3, 7, 11, 1000], [100000]])
def test_single_reads_return_the_same_fields_whatever_the_chunking(chunks):
    """TorchServe's own reads (the command byte, the load message) go through read()."""
    stream = b"I" + field(b"req-1") + field(b"content-type") + field(b'{"data": [0.2, 0.6]}') + b"tail"
    reader = ts_fastpath.BufferedReader()
    sock = ChunkedSocket(stream, chunks)
    assert reader.read(sock, 1) == b"I"
    fields = []
    for _ in range(3):
        (length,) = struct.unpack("!i", reader.read(sock, 4))
        fields.append(bytes(reader.read(sock, length)))
    assert fields == [b"req-1", b"content-type", b'{"data": [0.2, 0.6]}']
    assert reader.read(sock, 4) == b"tail"


def test_separate_sockets_keep_separate_buffers():
    reader = ts_fastpath.BufferedReader()
    a, b = ChunkedSocket(b"aaaa", [4]), ChunkedSocket(b"bbbb", [4])
    assert reader.read(a, 2) == b"aa"
    assert reader.read(b, 2) == b"bb"
    assert reader.read(a, 2) == b"aa"


def test_one_recv_serves_a_whole_batch():
    stream = b"".join(BATCHES["a batch"]) + END
    sock = ChunkedSocket(stream, [len(stream)])
    assert len(ts_fastpath.BufferedReader().inference_msg(sock)) == 48
    assert sock.calls == 1


def test_json_bodies_are_left_undecoded_when_torchserve_is_told_so(monkeypatch):
    monkeypatch.setenv("TS_DECODE_INPUT_REQUEST", "false")
    stream = b"I" + BATCHES["one request"][0] + END
    _, expected = torchserve_reads(stream)
    batch, _ = fast_reads(stream, [len(stream)])
    assert as_compared(batch) == expected
    assert batch.inputs[0]["body"] == b'{"data": [0.2, 0.6]}'


@pytest.mark.parametrize("cut", [1, 3, 4, 10, 30, -5, -4, -1])
def test_a_cut_message_is_incomplete(cut):
    body = BATCHES["one request"][0] + END
    with pytest.raises(ts_fastpath.Incomplete):
        ts_fastpath.parse_batch(bytearray(body[:cut]))


def test_a_closed_socket_exits_like_torchserve():
    with pytest.raises(SystemExit):
        ts_fastpath.BufferedReader().read(ChunkedSocket(b"ab", [2]), 3)
    with pytest.raises(SystemExit):
        ts_fastpath.BufferedReader().inference_msg(ChunkedSocket(BATCHES["one request"][0][:20], []))


def context_for(n: int, answers: list[dict]) -> Context:
    """A TorchServe context whose requests were answered as `answers` say (status, phrase, headers)."""
    context = Context("m", "/tmp", {"model": {}}, n, None, "0.12")
    context.request_processor = [RequestProcessor({}) for _ in range(n)]
    for idx, answer in enumerate(answers):
        for key, value in answer.get("headers", {}).items():
            context.set_response_header(idx, key, value)
        if "status" in answer:
            context.set_response_status(answer["status"], answer.get("phrase", ""), idx)
    return context


RESPONSES = {
    "plain answers": ([{}, {}], ['{"output": 0.1}', '{"output": 0.2}']),
    "headers and a 400": (
        [
            {"headers": {"content-type": "application/json", "X-Model-Version": "1.0"}},
            {"headers": {"content-type": "application/json"}, "status": 400, "phrase": "Bad Request"},
        ],
        ['{"output": 0.1}', '{"error": "bad"}'],
    ),
    "bytes and unicode": ([{"headers": {"X-Note": "ünïcode"}}, {}], [b"\x00raw", "é"]),
    "status without phrase": ([{"status": 500}], ["x"]),
}


@pytest.mark.parametrize("name", RESPONSES)
def test_answers_are_encoded_as_torchserve_encodes_them(name):
    answers, values = RESPONSES[name]
    req_ids = {idx: f"req-{idx}" for idx in range(len(values))}
    expected = otf_message_handler.create_predict_response(
        values, req_ids, "Prediction success", 200, context=context_for(len(values), answers)
    )
    got = ts_fastpath.encode_response(values, req_ids, "Prediction success", 200, context_for(len(values), answers))
    assert got == expected


@pytest.mark.parametrize(
    "values, answers",
    [
        ([torch.tensor([1.0])], [{}]),  # a tensor: TorchServe's encoder pickles it
        ([{"output": 1}], [{}]),  # a dict: TorchServe's encoder writes it as indented JSON
        (["x"], [{"headers": {"ts_stream_next": "true"}}]),  # streaming
        (["x"], [{"status": 400, "phrase": "Mauvaise requête"}]),  # a phrase TorchServe measures in characters
    ],
)
def test_what_the_fast_encoder_does_not_handle_goes_to_torchserve(values, answers):
    req_ids = {0: "req-0"}
    assert ts_fastpath.encode_response(values, req_ids, "ok", 200, context_for(1, answers)) is None
    calls = []

    def original(*args, **kwargs):
        calls.append(args)
        return otf_message_handler.create_predict_response(*args, **kwargs)

    encode = ts_fastpath.make_create_predict_response(original)
    expected = otf_message_handler.create_predict_response(values, req_ids, "ok", 200, context=context_for(1, answers))
    assert encode(values, req_ids, "ok", 200, context=context_for(1, answers)) == expected
    assert len(calls) == 1


def test_errors_without_answers_go_to_torchserve():
    calls = []
    encode = ts_fastpath.make_create_predict_response(lambda *a, **k: calls.append(a) or b"torchserve")
    assert encode(None, {0: "r"}, "Prediction failed", 503) == b"torchserve"
    assert encode(["x"], {0: "r"}, "ok", 200, context=context_for(1, [{}]), ts_stream_next=True) == b"torchserve"
    assert len(calls) == 2


def test_install_replaces_the_four_functions_once():
    module, service = patched()

    def installed():
        return (
            module._retrieve_buffer,
            module._retrieve_inference_msg,
            service.create_predict_response,
            service.Service.retrieve_data_for_inference,
        )

    first = installed()
    assert isinstance(module._retrieve_buffer.__self__, ts_fastpath.BufferedReader)
    assert module._retrieve_inference_msg.__self__ is module._retrieve_buffer.__self__
    assert service.create_predict_response.original is otf_message_handler.create_predict_response
    assert service.Service.retrieve_data_for_inference.__func__.original is Service.retrieve_data_for_inference
    assert ts_fastpath.install(module, service)
    assert installed() == first


def test_a_batch_from_elsewhere_is_unpacked_by_torchserve():
    _, service = patched()
    stream = b"I" + BATCHES["a batch"][0] + END
    _, msg = otf_message_handler.retrieve_msg(ChunkedSocket(stream, []))
    headers, inputs, ids = service.Service.retrieve_data_for_inference(msg)
    assert ids == {0: "id-0"}
    assert inputs == [{"body": {"data": [0.2, 0.6]}}]
    assert headers[0].get_request_property("X-Twinserve-Route") == "production"


STAND_INS = {
    "_retrieve_buffer": "module",
    "_retrieve_inference_msg": "module",
    "create_predict_response": "service",
    "retrieve_data_for_inference": "Service",
}


@pytest.mark.parametrize("missing", STAND_INS)
def test_install_refuses_when_a_function_is_missing(missing):
    module = types.SimpleNamespace(_retrieve_buffer=print, _retrieve_inference_msg=print)
    service = types.SimpleNamespace(
        create_predict_response=print, Service=types.SimpleNamespace(retrieve_data_for_inference=print)
    )
    delattr({"module": module, "service": service, "Service": service.Service}[STAND_INS[missing]], missing)
    assert not ts_fastpath.install(module, service)
    assert getattr(module, "_retrieve_buffer", print) is print
    assert getattr(service, "create_predict_response", print) is print


def test_the_patched_functions_are_the_ones_torchserve_calls():
    """If TorchServe ever reads or answers through other functions, this fails rather than the patch doing nothing."""
    import inspect

    import ts.service

    protocol = inspect.getsource(otf_message_handler)
    assert protocol.count("conn.recv(") == 1
    assert "def _retrieve_buffer(conn, length)" in protocol
    assert "msg = _retrieve_inference_msg(conn)" in protocol
    assert "from ts.protocol.otf_message_handler import create_predict_response" in inspect.getsource(ts.service)
    predict = " ".join(inspect.getsource(ts.service.Service.predict).split())
    assert "headers, input_batch, req_id_map = Service.retrieve_data_for_inference(batch)" in predict
    success = 'return create_predict_response( ret, req_id_map, "Prediction success", 200, context=self.context )'
    assert success in predict


@pytest.mark.parametrize("name", BATCHES)
def test_message_end_finds_where_each_message_ends(name):
    body = b"".join(BATCHES[name]) + END
    assert ts_fastpath.message_end(bytearray(body + b"next")) == len(body)
    assert ts_fastpath.parse_batch(bytearray(body))[1] == len(body)
    for cut in (1, 4, len(body) // 2, len(body) - 1):
        assert ts_fastpath.message_end(bytearray(body[:cut])) is None


def test_a_batch_of_large_bodies_in_small_pieces_is_parsed_at_most_twice(monkeypatch):
    body = b"".join([request(f"r{i}".encode(), ROUTE, [(b"body", b"application/json", LARGE)]) for i in range(8)])
    stream = body + END
    calls = []
    parse = ts_fastpath.parse_batch
    monkeypatch.setattr(ts_fastpath, "parse_batch", lambda *a: calls.append(1) or parse(*a))
    monkeypatch.setattr(ts_fastpath, "CHUNK", 4096)
    sock = ChunkedSocket(stream, [4096] * 1000)
    batch = ts_fastpath.BufferedReader().inference_msg(sock)
    assert len(batch) == 8 and batch.inputs[7]["body"] == json.loads(LARGE)
    assert len(calls) == 2
    assert sock.calls > 10
