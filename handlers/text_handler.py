"""TorchServe handler for text classifiers: {"text": ...} or {"texts": [...]} in, labels and scores out.

A kind of twinserve_handler.TwinserveHandler: it decodes requests
(text_codec.py), tokenises every text of the TorchServe batch at once with the
`tokenizers` library (the Rust tokenizer that transformers wraps, without
importing transformers) from the archive's tokenizer.json, pads them to the
longest text of this batch (not to the model's 256 or 512), runs one forward
pass and splits the outputs back per request. A text over the model's token
limit is truncated to it, as sentence-transformers does, and its answer says
"truncated": true. Drift features (text_codec.text_drift_row): each text's
length in characters and tokens, its share of unknown tokens, its sentence
embedding on the training set's top principal components (handler.drift_pca:
drift_projection.py) and the model's positive score.

Scores are computed in float32 (float64 costs a transformer twice the time) and
rounded to 4 digits: a text's scores do not depend on what shared its batch
beyond that rounding (tests/unit/test_handlers_text_handler.py checks it).
"""

import os

import torch
from text_codec import LABELS, Texts, format_answer, parse_request, text_drift_features, text_drift_row
from tokenizers import Tokenizer
from twinserve_handler import TwinserveHandler


class TextHandler(TwinserveHandler):
    def configure(self, cfg):
        """Args: cfg: max_tokens (truncation), max_texts (per request), max_text_bytes (413 above),
        labels (the head's outputs, in order), tokenizer (file in the archive), max_forward (the most
        texts in one forward pass: bounds the attention's memory). The body's limit is twinserve.max_body
        (the base checks it)."""
        self.max_tokens = int(cfg.get("max_tokens", 256))
        self.max_texts = int(cfg.get("max_texts", 32))
        self.max_text_bytes = int(cfg.get("max_text_bytes", 4096))
        self.labels = tuple(cfg.get("labels", LABELS))
        self.tokenizer_file = str(cfg.get("tokenizer", "tokenizer.json"))
        self.max_forward = int(cfg.get("max_forward", 64))
        self.drift_features = text_drift_features(self.projection.names if self.projection else [])

    def initialize(self, context):
        super().initialize(context)
        path = os.path.join(context.system_properties.get("model_dir"), self.tokenizer_file)
        self.tokenizer = load_tokenizer(path, self.max_tokens)
        self.unknown_id = self.tokenizer.token_to_id("[UNK]")

    def prepare(self, model):
        self.model = model.float().eval()

    def decode(self, request) -> Texts:
        return parse_request(request, self.max_texts, self.max_text_bytes)

    def predict(self, items: list[Texts]) -> list[list[tuple[list[float], bool, int]]]:
        """Every text of every request, tokenised together; one forward pass, padded to the batch's longest.

        A batch of more than max_forward texts (32 requests of 32 texts: 1,024) goes in passes of
        max_forward texts of similar length, each padded to its own longest: the attention's memory
        grows with texts × tokens², and 1,024 × 256² would take gigabytes.

        Returns:
            Per request, per text: (probabilities, truncated, tokens, drift values: text_codec.text_drift_row).
        """
        texts = [t for item in items for t in item.values]
        ids, mask, truncated = encode_batch(self.tokenizer, texts)
        tokens = mask.sum(dim=1)
        probs = torch.empty(len(texts), len(self.labels), dtype=torch.float64)
        passes = [torch.arange(len(texts))] if len(texts) <= self.max_forward else None
        passes = passes or list(torch.argsort(tokens, stable=True).split(self.max_forward))
        with torch.inference_mode():
            for idx in passes:
                longest = int(tokens[idx].max())  # padding is on the right: cut to this pass's longest
                probs[idx] = torch.softmax(self.model(ids[idx, :longest], mask[idx, :longest]).double(), dim=1)
        drift = self.drift_values(texts, ids, tokens, passes, probs)
        rows = iter(zip(probs.tolist(), truncated, tokens.tolist(), drift, strict=True))
        return [[next(rows) for _ in item.values] for item in items]

    def drift_values(self, texts, ids, tokens, passes, probs) -> list[list[float]]:
        """Each text's drift row (text_drift_row), from what predict() computed."""
        unknown = (
            (ids == self.unknown_id).sum(dim=1) if self.unknown_id is not None else torch.zeros_like(tokens)
        ).tolist()
        pcs = self.projected(passes)
        pcs = pcs.tolist() if pcs is not None else [[]] * len(texts)
        positive = probs[:, self.labels.index("positive") if "positive" in self.labels else -1].tolist()
        lengths = tokens.tolist()
        return [text_drift_row(*row) for row in zip(texts, lengths, unknown, pcs, positive, strict=True)]

    def scores(self, output) -> list[float]:
        return [p for probs, *_ in output for p in probs]

    def encode(self, item: Texts, output) -> str:
        return format_answer(item, [(probs, cut) for probs, cut, *_ in output], self.labels)

    def drift_rows(self, item: Texts, output) -> list[list[float]]:
        return [drift for *_, drift in output]


def load_tokenizer(path: str, max_tokens: int) -> Tokenizer:
    """The archive's tokenizer, truncating at max_tokens and padding to the longest of each batch.

    all-MiniLM-L6-v2's tokenizer.json pads every text to 128 tokens; that is reset here.
    """
    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_tokens)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
    return tok


def encode_batch(tok: Tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
    """(token ids, attention mask, truncated per text), (N, longest in this batch)."""
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    return ids, mask, [bool(e.overflowing) for e in enc]
