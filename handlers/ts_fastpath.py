"""A faster codec for TorchServe's worker protocol: same bytes, less Python.

TorchServe 0.12's Python worker reads every field of every request (ids, each
header name and value, content type, body, and their lengths) with a separate
socket recv() through four layers of function calls, and encodes every answer
with a dozen small bytearray appends. Under load that made most of the worker's
CPU time, more than the model. This module replaces four functions of
ts.protocol.otf_message_handler and ts.service, without changing a byte on the
wire or what the handler is given:

- _retrieve_buffer: fields are served from one buffer per socket, filled by
  recv() calls of up to 256 KiB, instead of one recv() per field;
- _retrieve_inference_msg: a whole batch is parsed from that buffer in one
  pass (parse_batch), straight into what Service.predict hands the handler;
- Service.retrieve_data_for_inference: returns that parsed Batch as it is
  (TorchServe's version builds it from intermediate dicts, request by request);
- create_predict_response, as ts.service calls it: answers whose values are
  text or bytes, with no streaming, are encoded in one pass (encode_response);
  anything else goes to TorchServe's own function.

Installed by the handler at initialize() (after the load message has been read
unbuffered, so nothing is read ahead of it), when model-config.yaml asks for it.
TorchServe 0.12 is the last release (the repository is archived), so the
functions replaced here will not change under us; install() refuses to patch a
module that lacks any of them, and tests/unit/test_handlers_ts_fastpath.py checks both
codecs against TorchServe's on the same messages.
"""

import json
import logging
import os
import struct
import sys

from ts.context import RequestProcessor

CHUNK = 256 * 1024
_INT = struct.Struct("!i")
_TWO_INTS = struct.Struct("!ii")


class Incomplete(Exception):
    """The buffer ends before the message does: read more and parse again."""


def _decode_value(value: bytearray, content_type: str, decode: bool):
    """A parameter's value, decoded as TorchServe's _retrieve_input_data decodes it."""
    if decode and content_type == "application/json":
        try:
            return json.loads(value.decode("utf-8"))
        except Exception:  # noqa: BLE001 - TorchServe forwards the raw bytes, and so do we
            logging.warning("Failed json decoding of input data. Forwarding encoded payload", exc_info=True)
            return value
    if decode and content_type.startswith("text"):
        try:
            return value.decode("utf-8")
        except Exception:  # noqa: BLE001
            logging.warning("Failed utf-8 decoding of input data. Forwarding encoded payload", exc_info=True)
            return value
    return value


class Batch:
    """One inference message, as Service.retrieve_data_for_inference returns it.

    headers: one RequestProcessor per request (its parameters' content types and its HTTP headers);
    inputs: one {parameter name: value} per request; ids: {index in the batch: request id}.
    """

    __slots__ = ("headers", "inputs", "ids")

    def __init__(self):
        self.headers: list[RequestProcessor] = []
        self.inputs: list[dict] = []
        self.ids: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.inputs)


def parse_batch(buf: bytearray, pos: int = 0, decode: bool = True) -> tuple[Batch, int]:
    """Parse the batch of one inference message, which starts at buf[pos] (after the command byte).

    Args:
        buf: bytes received so far.
        pos: where the batch starts.
        decode: decode JSON and text bodies (TorchServe's TS_DECODE_INPUT_REQUEST).
    Returns:
        What TorchServe's _retrieve_inference_msg and then Service.retrieve_data_for_inference
        make of the message, and the position just past it.
    Raises:
        Incomplete: buf ends before the message does.
    """
    # Written flat, without a call per field: this loop runs for every request. A field cut off by
    # the end of buf leaves pos past it, so the next length read raises struct.error: Incomplete.
    # A negative length reads as empty, as in TorchServe, except -1 where a list may end.
    unpack = _INT.unpack_from
    batch = Batch()
    try:
        while True:
            (n,) = unpack(buf, pos)
            pos += 4
            if n == -1:
                return batch, pos
            request_id, pos = (buf[pos : pos + n], pos + n) if n > 0 else (bytearray(), pos)
            http_headers = []
            while True:
                (n,) = unpack(buf, pos)
                pos += 4
                if n == -1:
                    break
                name, pos = (buf[pos : pos + n], pos + n) if n > 0 else (bytearray(), pos)
                (n,) = unpack(buf, pos)
                pos += 4
                value, pos = (buf[pos : pos + n], pos + n) if n > 0 else (bytearray(), pos)
                http_headers.append((name, value))
            inputs, properties = {}, {}
            while True:
                (n,) = unpack(buf, pos)
                pos += 4
                if n == -1:
                    break
                name, pos = (buf[pos : pos + n], pos + n) if n > 0 else (bytearray(), pos)
                (n,) = unpack(buf, pos)
                pos += 4
                content_type, pos = (buf[pos : pos + n], pos + n) if n > 0 else (bytearray(), pos)
                (n,) = unpack(buf, pos)
                pos += 4
                value, pos = (buf[pos : pos + n], pos + n) if n > 0 else (bytearray(), pos)
                if pos > len(buf):
                    raise Incomplete
                name, content_type = name.decode("utf-8"), content_type.decode("utf-8")
                inputs[name] = _decode_value(value, content_type, decode)
                properties[name] = {"content-type": content_type}
            # TorchServe sets the parameters' content types first, then the HTTP headers over them.
            for name, value in http_headers:
                properties[name.decode("utf-8")] = value.decode("utf-8")
            batch.ids[len(batch.inputs)] = request_id.decode("utf-8")
            batch.headers.append(RequestProcessor(properties))
            batch.inputs.append(inputs)
    except struct.error:
        raise Incomplete from None


def message_end(buf: bytearray, pos: int = 0) -> int | None:
    """Where the inference message starting at buf[pos] ends, or None if buf ends first.

    Follows the same framing as parse_batch, reading lengths only.
    """
    unpack = _INT.unpack_from

    def skip(pos: int) -> int:  # past one length-prefixed field; a negative length is an empty field
        (n,) = unpack(buf, pos)
        return pos + 4 + max(n, 0)

    try:
        while True:
            (n,) = unpack(buf, pos)
            if n == -1:
                return pos + 4
            pos = skip(pos)  # request id
            for fields_per_entry in (2, 3):  # headers: name, value; parameters: name, content type, value
                while True:
                    (n,) = unpack(buf, pos)
                    if n == -1:
                        pos += 4
                        break
                    for _ in range(fields_per_entry):
                        pos = skip(pos)
    except struct.error:  # a length past the end of buf, or a field cut off before it
        return None


class BufferedReader:
    """Serves the worker's reads from one buffer per socket."""

    def __init__(self):
        self._buffers: dict[int, bytearray] = {}

    def _fill(self, conn, buf: bytearray, at_least: int) -> None:
        packet = conn.recv(max(CHUNK, at_least))
        if not packet:
            logging.info("Frontend disconnected.")
            sys.exit(0)
        buf += packet

    def read(self, conn, length: int) -> bytearray:
        """Exactly `length` bytes, as TorchServe's _retrieve_buffer returns them."""
        buf = self._buffers.setdefault(id(conn), bytearray())
        while len(buf) < length:
            self._fill(conn, buf, length - len(buf))
        data = buf[:length]
        del buf[:length]
        return data

    def inference_msg(self, conn) -> Batch:
        """The batch of an inference message, ready for Service.predict."""
        buf = self._buffers.setdefault(id(conn), bytearray())
        decode = os.environ.get("TS_DECODE_INPUT_REQUEST") in (None, "true")
        try:
            batch, end = parse_batch(buf, 0, decode)
        except Incomplete:
            # Rare: one recv() holds most batches. Wait for the whole message, watching only the
            # lengths (message_end decodes nothing), then parse it once more: a batch of large
            # bodies arriving in many pieces is not parsed again for every piece.
            while message_end(buf) is None:
                self._fill(conn, buf, CHUNK)
            batch, end = parse_batch(buf, 0, decode)
        del buf[:end]
        return batch


def encode_response(values: list, req_id_map: dict, message: str, code: int, context) -> bytearray | None:
    """TorchServe's predict response for text or bytes answers, or None where TorchServe's own
    encoder must write it (other kinds of answer, streaming headers, non-ASCII status phrases).

    Byte for byte what ts.protocol.otf_message_handler.create_predict_response
    writes for the same arguments (tests/unit/test_handlers_ts_fastpath.py compares them).
    """
    pack_int = _INT.pack
    encoded = message.encode("utf-8")
    parts = [_TWO_INTS.pack(code, len(encoded)), encoded]
    processors = context.request_processor
    for idx, req_id in req_id_map.items():
        processor = processors[idx]
        headers = processor.get_response_headers()
        phrase = processor.get_response_status_phrase() or ""
        value = values[idx]
        if "ts_stream_next" in headers or not phrase.isascii():
            return None
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, (bytes, bytearray)):
            return None
        rid = req_id.encode("utf-8")
        content_type = (headers.get("content-type") or "").encode("utf-8")
        status = processor.get_response_status_code()
        status = 200 if status is None else status
        parts += (pack_int(len(rid)), rid, pack_int(len(content_type)), content_type)
        parts += (_TWO_INTS.pack(status, len(phrase)), phrase.encode(), pack_int(len(headers)))
        for key, text in headers.items():
            key, text = key.encode("utf-8"), text.encode("utf-8")
            parts += (pack_int(len(key)), key, pack_int(len(text)), text)
        parts += (pack_int(len(value)), value)
    parts.append(pack_int(-1))
    return bytearray(b"".join(parts))


def make_create_predict_response(original):
    """create_predict_response that encodes the common case itself and hands the rest to `original`."""

    def create_predict_response(ret, req_id_map, message, code, context=None, ts_stream_next=False):
        plain = ret is not None and context is not None and not ts_stream_next and not context.stopping_criteria
        if plain and str(os.getenv("LOCAL_RANK", 0)) == "0":
            encoded = encode_response(ret, req_id_map, message, code, context)
            if encoded is not None:
                return encoded
        return original(ret, req_id_map, message, code, context=context, ts_stream_next=ts_stream_next)

    create_predict_response.original = original
    return create_predict_response


def make_retrieve_data_for_inference(original):
    """Service.retrieve_data_for_inference that returns a parsed Batch as it is."""

    def retrieve_data_for_inference(batch):
        if isinstance(batch, Batch):
            return batch.headers, batch.inputs, batch.ids
        return original(batch)

    retrieve_data_for_inference.original = original
    return staticmethod(retrieve_data_for_inference)


def install(module=None, service=None) -> bool:
    """Replace TorchServe's reader, batch parser, batch unpacking and response encoder; True if installed.

    Args:
        module: ts.protocol.otf_message_handler (or a stand-in, for tests).
        service: ts.service, whose Service.predict calls retrieve_data_for_inference and
            create_predict_response (by that name).
    """
    if module is None:
        from ts.protocol import otf_message_handler as module
    if service is None:
        import ts.service as service
    found = (
        getattr(module, "_retrieve_buffer", None),
        getattr(module, "_retrieve_inference_msg", None),
        getattr(service, "create_predict_response", None),
        getattr(getattr(service, "Service", None), "retrieve_data_for_inference", None),
    )
    if not all(map(callable, found)):
        return False
    if isinstance(getattr(module._retrieve_buffer, "__self__", None), BufferedReader):
        return True
    reader = BufferedReader()
    module._retrieve_buffer = reader.read
    module._retrieve_inference_msg = reader.inference_msg
    service.Service.retrieve_data_for_inference = make_retrieve_data_for_inference(
        service.Service.retrieve_data_for_inference
    )
    service.create_predict_response = make_create_predict_response(service.create_predict_response)
    return True
