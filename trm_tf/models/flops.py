"""Matmul FLOP count of a `ReasoningBackbone` (docs/model.md#flops).

FLOPs are those of the matrix products (2 per multiply-add); norms, activations and the softmax are
left out. The count depends on the model's shapes and on its recursion's block calls only, so it is
a pair of functions of the model rather than part of the forward pass.
"""

from __future__ import annotations

from trm_tf.models.primitives import swiglu_intermediate_size


def block_flops(model) -> int:
    """Matmul FLOPs of one block for one example: qkv, o, SwiGLU and QK^T / AV, with the attention's
    inner width a = num_heads * (D // num_heads) (a = D when heads divide D)."""
    t, d = model.total_len, model.hidden_size
    i_ch = swiglu_intermediate_size(d, model.expansion)
    if model.mlp_t:
        i_t = swiglu_intermediate_size(t, model.expansion)
        return t * 6 * d * i_ch + d * 6 * t * i_t
    a = model.num_heads * (d // model.num_heads)
    return t * (2 * d * 3 * a + 2 * a * d + 6 * d * i_ch) + 4 * t * t * a


def flops_per_example(model, train: bool = True, cycles=None) -> int:
    """Matmul FLOPs per example of one supervision step of `model` (a `ReasoningBackbone`).

    Forward = the recursion's block applications + heads (lm_head on all positions, q_head).
    With train=True adds the backward, 2x the with-gradient part (its blocks and the heads).
    `cycles` is (H_cycles, L_cycles), or None for the model's defaults.
    """
    heads = 2 * model.total_len * model.hidden_size * model.vocab_size + 4 * model.hidden_size
    recursion = model.recursion
    n_fwd, n_grad = recursion.block_calls(model, *recursion.resolve_cycles(cycles))
    blk = block_flops(model)
    fwd = n_fwd * blk + heads
    if not train:
        return int(fwd)
    return int(fwd + 2 * (n_grad * blk + heads))
