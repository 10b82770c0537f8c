"""DETR's transformer encoder: every token attends to every other token of
the single feature map.

Symbols: B batch, S = H * W tokens, C channels, M heads.
"""
from torch import Tensor, nn

from mmdet_detr.ops import ResidualDropout
from mmdet_detr.registry import MODELS
from .ffn import FFN


class TransformerEncoderLayer(nn.Module):
    """Post-norm layer (the paper's): self-attention, then the FFN, each
    followed by dropout, the residual sum and a LayerNorm."""

    def __init__(self, embed_dims: int, num_heads: int,
                 feedforward_channels: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.self_attn_residual = ResidualDropout(dropout)
        self.self_attn_norm = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, feedforward_channels, dropout)
        self.ffn_residual = ResidualDropout(dropout)
        self.ffn_norm = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor,
                padding_mask: Tensor) -> Tensor:
        """(B, S, C) tokens -> (B, S, C); see the encoder for the inputs."""
        # Positions go into queries and keys, not values (DETR).
        q = k = query + query_pos
        attended = self.self_attn(
            q, k, query, key_padding_mask=padding_mask,
            need_weights=False)[0]  # B, S, C
        query = self.self_attn_norm(self.self_attn_residual(query, attended))
        return self.ffn_norm(self.ffn_residual(query, self.ffn(query)))


@MODELS.register_module()
class TransformerEncoder(nn.Module):
    """A stack of post-norm encoder layers, without a final norm (post-norm
    layers end in one already; DETR adds it only in its pre-norm variant).

    Args:
        num_layers: the number of layers.
        embed_dims: C (the detector passes its own).
        num_heads: attention heads M; C must be divisible by M.
        feedforward_channels: the FFN's hidden width.
        dropout: dropout of the attention weights, of the attention output
            and of the FFN.
    """

    def __init__(self,
                 num_layers: int = 6,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.1) -> None:
        super().__init__()
        check_num_heads(embed_dims, num_heads, 'encoder')
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.layers = nn.ModuleList([
            TransformerEncoderLayer(embed_dims, num_heads,
                                    feedforward_channels, dropout)
            for _ in range(num_layers)
        ])

    def init_weights(self) -> None:
        """Xavier for every matrix, as DETR's ``_reset_parameters``."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, query: Tensor, query_pos: Tensor,
                padding_mask: Tensor) -> Tensor:
        """Encode.

        Args:
            query: (B, S, C) the flattened feature map.
            query_pos: (B, S, C) its positional encoding.
            padding_mask: (B, S) bool, True at padded tokens.

        Returns:
            (B, S, C) the memory.
        """
        for layer in self.layers:
            query = layer(query, query_pos, padding_mask)
        return query


def check_num_heads(embed_dims: int, num_heads: int, stack: str) -> None:
    """Refuse a width that the heads do not divide, naming the keys."""
    if embed_dims % num_heads:
        raise ValueError(
            f'model.embed_dims ({embed_dims}) must be divisible by '
            f'model.{stack}.num_heads ({num_heads})')
