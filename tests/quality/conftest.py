"""A tiny random-init Llama with a word-level tokenizer, saved as a Hugging Face directory: the
co-design mechanics (hooks, calibration, capture, replay, mask check) in seconds, offline."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs torch (pip install 'sparsesim[capture]')")
transformers = pytest.importorskip("transformers", reason="needs transformers (pip install 'sparsesim[hf]')")

from sparsesim.workloads.corpus import corpus_part  # noqa: E402

WORDS = 300


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """``(directory, model, tokenizer)``: 2 layers, d 32, SiLU-gated MLP of 48, vocab of the
    corpus' 300 most frequent words plus [UNK]; seeded."""
    from collections import Counter

    from tokenizers import Tokenizer, models, pre_tokenizers

    counts = Counter(corpus_part("eval").text.lower().split())
    vocab = {"[UNK]": 0, **{w: i + 1 for i, (w, _) in enumerate(counts.most_common(WORDS))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    from tokenizers import normalizers

    tok.normalizer = normalizers.Lowercase()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=48,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=512, tie_word_embeddings=True, hidden_act="silu")
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).float().eval()
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").float().eval()
    return folder, loaded, tokenizer
