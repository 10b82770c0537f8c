"""DETR's transformer decoder: object queries attend to each other, then to
every token of the encoder memory.

Symbols: B batch, Q queries, S memory tokens, C channels, N decoder layers,
M heads.
"""
import torch
from torch import Tensor, nn

from mmdet_detr.ops import ResidualDropout
from mmdet_detr.registry import MODELS
from .ffn import FFN
from .transformer_encoder import check_num_heads


class TransformerDecoderLayer(nn.Module):
    """Post-norm layer (the paper's): self-attention, cross-attention to the
    memory, FFN, each followed by dropout, the residual sum and a
    LayerNorm."""

    def __init__(self, embed_dims: int, num_heads: int,
                 feedforward_channels: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.self_attn_residual = ResidualDropout(dropout)
        self.self_attn_norm = nn.LayerNorm(embed_dims)
        self.cross_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn_residual = ResidualDropout(dropout)
        self.cross_attn_norm = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, feedforward_channels, dropout)
        self.ffn_residual = ResidualDropout(dropout)
        self.ffn_norm = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                memory_pos: Tensor, memory_padding_mask: Tensor) -> Tensor:
        """(B, Q, C) queries -> (B, Q, C); see the decoder for the inputs."""
        # Positions go into queries and keys, not values (DETR).
        q = k = query + query_pos
        attended = self.self_attn(q, k, query, need_weights=False)[0]
        query = self.self_attn_norm(self.self_attn_residual(query, attended))
        attended = self.cross_attn(
            query + query_pos, memory + memory_pos, memory,
            key_padding_mask=memory_padding_mask,
            need_weights=False)[0]  # B, Q, C
        query = self.cross_attn_norm(self.cross_attn_residual(query, attended))
        return self.ffn_norm(self.ffn_residual(query, self.ffn(query)))


@MODELS.register_module()
class TransformerDecoder(nn.Module):
    """A stack of post-norm decoder layers that returns every layer's output
    through one shared final LayerNorm (DETR's decoder ``norm``), so the
    head sees the same normalisation for its auxiliary and final outputs.

    Args:
        num_layers: N, the number of layers (and of prediction layers of
            the head).
        embed_dims: C (the detector passes its own).
        num_heads: heads M of both attentions; C must be divisible by M.
        feedforward_channels: the FFN's hidden width.
        dropout: dropout of the attention weights, of the attention outputs
            and of the FFN.
    """

    def __init__(self,
                 num_layers: int = 6,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.1) -> None:
        super().__init__()
        check_num_heads(embed_dims, num_heads, 'decoder')
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.layers = nn.ModuleList([
            TransformerDecoderLayer(embed_dims, num_heads,
                                    feedforward_channels, dropout)
            for _ in range(num_layers)
        ])
        self.final_norm = nn.LayerNorm(embed_dims)

    def init_weights(self) -> None:
        """Xavier for every matrix, as DETR's ``_reset_parameters``."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                memory_pos: Tensor, memory_padding_mask: Tensor) -> Tensor:
        """Decode.

        Args:
            query: (B, Q, C) query content (zeros for DETR's first layer).
            query_pos: (B, Q, C) the learned object queries.
            memory: (B, S, C) the encoder output.
            memory_pos: (B, S, C) the memory's positional encoding.
            memory_padding_mask: (B, S) bool, True at padded tokens.

        Returns:
            (N, B, Q, C) every layer's output after the final norm.
        """
        hidden_states = []
        for layer in self.layers:
            query = layer(query, query_pos, memory, memory_pos,
                          memory_padding_mask)
            hidden_states.append(self.final_norm(query))
        return torch.stack(hidden_states)  # N, B, Q, C
