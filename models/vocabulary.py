"""A ranker's vocabulary cut to the token ids its prompts use (issue 16).

SmolLM2's tokenizer has 49,152 ids, and a ranker's embedding table and LM head hold a
row of 576 floats for each: two thirds of the teacher's parameters. Its prompts
(templates, occupations, skills, cities, company names, perks) use about 3,000 ids.
Cutting both tables to those rows is the largest single cut in parameters and bytes,
and it changes no score of a prompt whose ids were all kept.

Any text must still be encodable. A byte-level BPE token is the merge of two smaller
tokens, down to the 256 byte tokens that are no merge's result. So the kept set is the
used ids plus every id that no merge produces (the bytes and the special tokens), and
an id outside it is spelled by the two ids its merge joined, recursively, until every
piece is kept. The text is the same; only an unusual word costs a few more tokens.

    vocab = Vocabulary.trimmed(tokenizer, used_ids)
    trim_model(model, vocab)              # embedding and head keep vocab.kept's rows
    vocab.encode(tokenizer("...").input_ids)   # ids in the trimmed model's numbering
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import torch
from torch import nn


def merge_parts(tokenizer) -> dict[int, tuple[int, int]]:
    """id -> (left id, right id) for every token a BPE merge produces (the first merge
    that produces it: the one the tokenizer applies)."""
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"vocabulary trimming needs a BPE tokenizer, not {model.get('type')!r}")
    vocab = model["vocab"]
    parts: dict[int, tuple[int, int]] = {}
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        joined = vocab.get(left + right)
        if joined is not None and joined not in parts:
            parts[joined] = (vocab[left], vocab[right])
    return parts


class Vocabulary:
    """The kept ids of a tokenizer, in the order of the trimmed model's rows, and the way
    to spell any other id with them."""

    def __init__(self, kept: Sequence[int], parts: dict[int, tuple[int, int]]):
        self.kept = [int(i) for i in kept]
        self.new_id = {old: new for new, old in enumerate(self.kept)}
        if len(self.new_id) != len(self.kept):
            raise ValueError("kept ids must be distinct")
        self.parts = parts
        unspellable = [p for pair in parts.values() for p in pair if p not in self.new_id and p not in parts]
        if unspellable:
            raise ValueError(f"ids {unspellable[:5]} are neither kept nor spelled by a merge")

    @classmethod
    def trimmed(cls, tokenizer, used: Iterable[int]) -> "Vocabulary":
        """The used ids, plus every id no merge produces (the bytes, the special tokens):
        with those, every text can still be encoded."""
        parts = merge_parts(tokenizer)
        base = (i for i in range(len(tokenizer)) if i not in parts)
        return cls(sorted(set(int(i) for i in used) | set(base)), parts)

    @classmethod
    def from_kept(cls, tokenizer, kept: Sequence[int]) -> "Vocabulary":
        return cls(kept, merge_parts(tokenizer))

    def __len__(self) -> int:
        return len(self.kept)

    def encode(self, ids: Iterable[int]) -> list[int]:
        """Tokenizer ids -> trimmed-model ids; an id not kept becomes its merge's parts."""
        out: list[int] = []
        for i in ids:
            self._spell(int(i), out)
        return out

    def _spell(self, i: int, out: list[int]) -> None:
        stack = [i]
        while stack:
            j = stack.pop()
            new = self.new_id.get(j)
            if new is not None:
                out.append(new)
            else:
                left, right = self.parts[j]
                stack.extend((right, left))  # left is spelled first

    def decode(self, ids: Iterable[int]) -> list[int]:
        """Trimmed-model ids -> tokenizer ids."""
        return [self.kept[i] for i in ids]


def trim_model(model, vocab: Vocabulary) -> None:
    """Keep only `vocab.kept`'s rows of the input embedding and the LM head (tied ones
    stay tied), and renumber the config's special ids: a plain causal LM of
    `len(vocab)` ids that `transformers` loads as it is."""
    index = torch.tensor(vocab.kept, dtype=torch.long)
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = head.weight.data_ptr() == emb.weight.data_ptr()
    new_emb = nn.Embedding(len(vocab), emb.embedding_dim, device=emb.weight.device, dtype=emb.weight.dtype)
    new_emb.weight.data.copy_(emb.weight.data[index.to(emb.weight.device)])
    model.set_input_embeddings(new_emb)
    new_head = nn.Linear(head.in_features, len(vocab), bias=head.bias is not None,
                         device=head.weight.device, dtype=head.weight.dtype)
    if tied:
        new_head.weight = new_emb.weight
    else:
        new_head.weight.data.copy_(head.weight.data[index.to(head.weight.device)])
    if head.bias is not None:
        new_head.bias.data.copy_(head.bias.data[index.to(head.weight.device)])
    model.set_output_embeddings(new_head)
    model.config.vocab_size = len(vocab)
    for config in (model.config, getattr(model, "generation_config", None)):
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            old = getattr(config, name, None)
            if isinstance(old, int):
                setattr(config, name, vocab.new_id[old])
            elif isinstance(old, list):
                setattr(config, name, [vocab.new_id[i] for i in old])
