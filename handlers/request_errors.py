"""Errors a request can earn, shared by every model kind's codec.

No torch, no TorchServe: codecs raise these, the base handler turns each into
its own HTTP status and a JSON body, and the other requests of the batch are
answered as if it had not been there.
"""

import json


class BadRequest(ValueError):
    """The client sent something we cannot score; answered with HTTP 400."""

    status = 400
    phrase = "Bad Request"


class PayloadTooLarge(BadRequest):
    """The body is over the model's limit; answered with HTTP 413."""

    status = 413
    phrase = "Payload Too Large"


class ModelFault(RuntimeError):
    """The model failed on a good request (for example a non-finite output); HTTP 500.

    The model's fault, not the client's: the smoke test and the error-ratio alerts
    see it, and no body with NaN in it (not JSON) goes out as an answer.
    """

    status = 500
    phrase = "Internal Server Error"


def format_error(message: str) -> str:
    return json.dumps({"error": message})
