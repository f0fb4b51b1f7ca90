"""PLM4Job: a small transformer encoder over heterogeneous ego-graph prompts.

A member or job is encoded together with its neighbourhood (see `models.ego_graph`):
the prompt is the node's text followed by its neighbours' texts, nearest first. On top
of a plain text encoder, three graph signals are added, each behind a config switch so
the ablation bench can price it:

    x_t   = E_tok[w_t] + E_pos[t] + E_type[type(t)] + E_hop[hop(t)]          (embeddings)
    a_ij  = softmax_j( q_i . k_j / sqrt(d) + b_h[dist(node(i), node(j))] )    (attention)
    z     = normalize( W_out mean_{t in ego segment} h_t )                     (embedding)

E_type tells the encoder which text is a member, a job or a company; E_hop how far that
node sits from the ego; and the proximity bias b_h (attention alignment) steers each
head's attention toward tokens of nodes close in the graph, with a learned bias per
head and per graph distance, started from an ALiBi-like prior (-slope_h * dist, one
head left global). With all three switched off this is exactly a text-only encoder of
the same prompt.

Config first, then classes in the order data meets them: embeddings, proximity bias,
attention, MLP, block, model. Training lives in `models/encoder_training.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


@strict
class EncoderConfig(PreTrainedConfig):
    model_type = "plm4job"

    vocab_size: int = 8000
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 256  # tokens per prompt
    embedding_dim: int = 128  # size of the exported member/job vectors
    dropout: float = 0.1
    pooling: str = "ego"  # "ego": mean over the first segment (the node itself), "mean": all tokens, "cls"
    sep_token_id: int = 3  # ends each node's segment; "ego" pooling stops at the first one
    n_node_types: int = 4  # padding + member, job, company (models.ego_graph.TYPE_ID)
    max_hop: int = 3  # hop ids 0..max_hop; farther nodes share the last one
    max_distance: int = 4  # alignment buckets 0..max_distance, one more for farther/unreachable
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    # ablation switches
    use_type_embeddings: bool = True
    use_position_embeddings: bool = True  # graph-positional: hop distance from the ego
    use_attention_alignment: bool = True


@dataclass
class EncoderOutput(ModelOutput):
    embeddings: torch.Tensor | None = None  # (B, embedding_dim), unit length
    last_hidden_state: torch.Tensor | None = None  # (B, T, hidden_size)
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T)


class GraphEmbeddings(nn.Module):
    """Token + sequence position, plus (switchable) entity type and hop embeddings."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        c = config
        self.tokens = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.positions = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.types = nn.Embedding(c.n_node_types, c.hidden_size) if c.use_type_embeddings else None
        self.hops = nn.Embedding(c.max_hop + 1, c.hidden_size) if c.use_position_embeddings else None
        self.norm = nn.LayerNorm(c.hidden_size)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, input_ids, type_ids=None, hop_ids=None):
        T = input_ids.shape[1]
        if T > self.positions.num_embeddings:
            raise ValueError(f"prompt of {T} tokens exceeds max_position_embeddings={self.positions.num_embeddings}")
        x = self.tokens(input_ids) + self.positions(torch.arange(T, device=input_ids.device))
        if self.types is not None:
            x = x + self.types(_required(type_ids, "type_ids", "use_type_embeddings"))
        if self.hops is not None:
            hop_ids = _required(hop_ids, "hop_ids", "use_position_embeddings")
            x = x + self.hops(hop_ids.clamp(max=self.hops.num_embeddings - 1))
        return self.drop(self.norm(x))


def _required(t, name: str, switch: str):
    if t is None:
        raise ValueError(f"{name} is required when config.{switch} is on")
    return t


class ProximityBias(nn.Module):
    """Attention alignment: an additive attention bias b[h, d] per head and node distance.

    Token i attends to token j with bias b[h, dist(node(i), node(j))]; tokens of the same
    node have distance 0. Head h starts at -slope_h * d (slopes 1, 1/2, 1/4, ..., the
    last head 0 so one head keeps a global view), and training moves the table.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.max_distance = config.max_distance
        self.bias = nn.Parameter(torch.zeros(config.num_heads, config.max_distance + 2))

    def prior(self) -> torch.Tensor:
        H, D = self.bias.shape
        slopes = torch.tensor([2.0 ** -h for h in range(H - 1)] + [0.0])
        return -slopes[:, None] * torch.arange(D, dtype=torch.float)[None, :]

    def forward(self, node_index, node_distances):
        # token-to-token distance: dist[b, i, j] = node_distances[b, node(i), node(j)]
        B = node_index.shape[0]
        idx = node_index.clamp(min=0)  # padding tokens point at node 0; masked anyway
        batch = torch.arange(B, device=idx.device)[:, None, None]
        dist = node_distances[batch, idx[:, :, None], idx[:, None, :]]
        dist = dist.clamp(min=0, max=self.max_distance + 1)  # farther / unreachable share a bucket
        return self.bias[:, dist].permute(1, 0, 2, 3)  # (B, H, T, T)


class SelfAttention(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        if config.hidden_size % config.num_heads:
            raise ValueError(f"hidden_size {config.hidden_size} not divisible by num_heads {config.num_heads}")
        self.n_head = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.dropout

    def forward(self, x, attn_bias, output_attentions: bool = False):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if output_attentions:
            # the explicit path, to return the attention map (tests, inspection)
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + attn_bias
            att = F.dropout(scores.softmax(dim=-1), self.dropout, self.training)
            y = att @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_bias, dropout_p=self.dropout if self.training else 0.0
            )
            att = None
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y), att


class MLP(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.drop(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.hidden_size)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.hidden_size)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x, attn_bias, output_attentions: bool = False):
        a, att = self.attn(self.ln1(x), attn_bias, output_attentions)
        x = x + self.drop(a)
        x = x + self.mlp(self.ln2(x))
        return x, att


class PLM4JobEncoder(PreTrainedModel):
    """Ego-graph prompt -> unit-length embedding; members and jobs share the weights."""

    config_class = EncoderConfig
    base_model_prefix = "plm4job"
    main_input_name = "input_ids"

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        if config.pooling not in ("ego", "mean", "cls"):
            raise ValueError(f"pooling must be 'ego', 'mean' or 'cls', got {config.pooling!r}")
        self.embeddings = GraphEmbeddings(config)
        self.proximity = ProximityBias(config) if config.use_attention_alignment else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.embedding_dim)
        # InfoNCE temperature, learned as in CLIP: logits = exp(logit_scale) * cos
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        if module is not None and module in (self.embeddings.types, self.embeddings.hops):
            # graph embeddings start at zero: a fresh model is the text-only model (plus the
            # alignment prior), and training adds graph signals only where they lower the loss
            module.weight.zero_()
            return
        super()._init_weights(module)
        if isinstance(module, ProximityBias):
            module.bias.copy_(module.prior())
        if module is self:
            self.logit_scale.fill_(math.log(1 / 0.07))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        type_ids: torch.Tensor | None = None,
        hop_ids: torch.Tensor | None = None,
        node_index: torch.Tensor | None = None,
        node_distances: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        if attention_mask is None:
            attention_mask = input_ids.ne(self.config.pad_token_id)
        x = self.embeddings(input_ids, type_ids, hop_ids)

        # additive attention bias: -inf on padding keys, plus graph proximity if aligned
        pad = torch.zeros(attention_mask.shape, dtype=x.dtype, device=x.device)
        pad = pad.masked_fill(~attention_mask.bool(), float("-inf"))[:, None, None, :]
        if self.proximity is not None:
            if node_index is None or node_distances is None:
                raise ValueError("node_index and node_distances are required when config.use_attention_alignment is on")
            attn_bias = self.proximity(node_index, node_distances).to(x.dtype) + pad
        else:
            attn_bias = pad.expand(-1, self.config.num_heads, x.shape[1], -1)

        attentions = []
        for block in self.blocks:
            x, att = block(x, attn_bias, output_attentions)
            attentions.append(att)
        h = self.ln_f(x)
        z = F.normalize(self.head(self._pool(h, attention_mask, input_ids)), dim=-1)
        return EncoderOutput(
            embeddings=z,
            last_hidden_state=h,
            attentions=tuple(attentions) if output_attentions else None,
        )

    def _pool(self, h, attention_mask, input_ids):
        """The node's vector: its own segment's token states, averaged.

        Token means rather than [CLS]: a fresh encoder's [CLS] states are near-identical
        across prompts, which stalls contrastive training for many steps. Only the ego's
        segment ([CLS] ... first [SEP]): averaging in the neighbours' tokens would blur the
        node with its neighbourhood; attention decides how much of them flows in.
        """
        if self.config.pooling == "cls":
            return h[:, 0]  # [CLS] sits at position 0, in the ego node
        m = attention_mask.bool()
        if self.config.pooling == "ego":
            is_sep = input_ids.eq(self.config.sep_token_id)
            first_sep = torch.where(is_sep.any(1), is_sep.int().argmax(1), input_ids.shape[1] - 1)
            m = m & (torch.arange(input_ids.shape[1], device=h.device)[None, :] <= first_sep[:, None])
        m = m.to(h.dtype).unsqueeze(-1)
        return (h * m).sum(1) / m.sum(1).clamp(min=1)
