"""Models a user might write, captured by ``test_user_capture.py`` as ``--model <this file>:NAME``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Small(nn.Module):
    """conv -> ReLU -> conv1d over rows -> self-attention (sdpa) -> einsum -> classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.rows = nn.Conv1d(4, 4, 3, padding=1)
        self.mix = nn.Parameter(torch.randn(8, 8) * 0.3)
        self.fc = nn.Linear(4 * 8, 5)

    def forward(self, x):
        b = x.shape[0]
        y = F.relu(self.conv(x))  # (b, 4, 8, 8)
        y = F.relu(self.rows(y.flatten(2)[..., :8]))  # (b, 4, 8)
        a = F.scaled_dot_product_attention(y, y, y)  # (b, 4, 8): 4 "tokens" of 8
        a = torch.einsum("btd,de->bte", a, self.mix)
        return self.fc(a.reshape(b, -1))


def make_model():
    return Small()


def make_dict():
    """The dict form: token inputs of its own, a custom loss, Adam."""
    model = nn.Sequential(nn.Embedding(11, 6), nn.Flatten(), nn.Linear(6 * 4, 3))
    return {"model": model, "inputs": lambda batch, gen: torch.randint(11, (batch, 4), generator=gen),
            "loss": lambda out, inputs: out.logsumexp(-1).mean(),
            "optimizer": lambda params: torch.optim.Adam(params, lr=1e-3)}


def make_tuple_output():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x), x

    return Two()


def make_broken():
    raise ValueError("no weights here")


def make_tokens():
    return nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 4))  # output (batch, 5, 4): not [batch, classes]
