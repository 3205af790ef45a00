"""What a sparsity setting costs a trained model: perplexity and next-token agreement (decoders).

Text is tokenized as the model's tokenizer does by default (``tokenizer(text).input_ids``). A
text longer than ``context`` tokens is cut into consecutive windows of ``context`` tokens (the
last one shorter; a last window of one token predicts nothing and is dropped), each evaluated as
its own sequence. Perplexity is what ``transformers`` computes: ``model(ids, labels=ids)`` gives
the mean next-token cross-entropy over a window's ``L - 1`` predictions, and over several windows
the perplexity is ``exp(sum of window losses * (L - 1) / sum of (L - 1))``, the mean over every
evaluated prediction. For one window that is exactly ``exp(model(ids, labels=ids).loss)``, which
anyone can recompute in a few lines.

Next-token agreement is the fraction of those predictions where the setting's most likely next
token (argmax of the logits) equals the dense model's on the same tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparsesim.core.errors import arg_error


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One pass over the evaluation windows: summed loss, predictions counted, top-1 per window."""

    nll_sum: float  # natural log, summed over predictions
    predictions: int
    top1: tuple[torch.Tensor, ...]  # argmax next token at each predicted position, per window

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_sum / self.predictions)

    def agreement(self, dense: Evaluation) -> float:
        """Fraction of predictions whose top-1 token equals ``dense``'s."""
        same = sum(int((a == b).sum()) for a, b in zip(self.top1, dense.top1, strict=True))
        return same / self.predictions


def token_ids(tokenizer, text: str) -> torch.Tensor:
    """The text's token ids (1-D, int64), as the tokenizer gives them by default."""
    return torch.as_tensor(tokenizer(text).input_ids, dtype=torch.long)


def windows(ids: torch.Tensor, context: int, max_tokens: int | None = None, arg: str = "context") -> list[torch.Tensor]:
    """The first ``max_tokens`` ids (all if None) in consecutive ``1 x L`` windows of at most
    ``context`` tokens; a last window of one token is dropped (it predicts nothing)."""
    if isinstance(context, bool) or not isinstance(context, int) or context < 2:
        raise arg_error(arg, f"must be an integer >= 2 tokens, got {context!r}")
    if max_tokens is not None:
        ids = ids[:max_tokens]
    out = [ids[i:i + context].unsqueeze(0) for i in range(0, ids.numel(), context)]
    out = [w for w in out if w.shape[1] >= 2]
    if not out:
        raise arg_error("text", f"has {ids.numel()} tokens: at least 2 are needed to predict one")
    return out


def evaluate(model, batches: list[torch.Tensor]) -> Evaluation:
    """Run ``model`` over the windows (no gradients) and sum what perplexity needs."""
    nll, count, top1 = 0.0, 0, []
    with torch.no_grad():
        for ids in batches:
            out = model(input_ids=ids, labels=ids)
            n = ids.shape[1] - 1
            nll += float(out.loss) * n
            count += n
            top1.append(out.logits[0, :-1].argmax(-1))
    return Evaluation(nll_sum=nll, predictions=count, top1=tuple(top1))


def sentence_embeddings(model, tokenizer, sentences: list[str]) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers makes them for all-MiniLM-L6-v2 (its
    ``modules.json``: the encoder, mean pooling over the real tokens, then L2 normalisation):
    ``n x d``, one row per sentence, padded batch."""
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)
