"""The forward pass of `ReasoningBackbone`: carry handling, input embeddings, networks and heads, and
its matmul FLOP count.

A mixin so that the backbone's construction, variables and config (`backbone.py`) and its per-step
computation (here) read as two files of one class; it holds no state of its own, so the checkpoint
paths are those of `ReasoningBackbone`'s attributes.
"""

from __future__ import annotations

import tensorflow as tf

from trm_tf.models.primitives import swiglu_intermediate_size


def _scale(x, constant: float):
    """x * constant computed in float32 and rounded once to x's dtype.

    torch multiplies a bfloat16 tensor by a Python float in float32 and rounds the product once; a
    bfloat16 constant would first round sqrt(512) = 22.627 to 22.625 (and 1/sqrt(2) to 0.70703),
    which puts a few percent of the embedding elements one bfloat16 step off. In float32 the casts
    are no-ops and the product is the same as before.
    """
    return tf.cast(tf.cast(x, tf.float32) * constant, x.dtype)


class BackboneForward:
    """Carry and forward methods of `ReasoningBackbone` (which supplies every attribute they read)."""

    # ------------------------------------------------------------------ carry

    def carry_spec(self) -> dict[str, tf.TensorSpec]:
        """Latent name -> per-example tf.TensorSpec([total_len, D], compute dtype), in carry order."""
        shape = (self.total_len, self.hidden_size)
        return {k: tf.TensorSpec(shape, self.compute_dtype_tf) for k in self.recursion.carry_names}

    def gather_puzzle_rows(self, puzzle_identifiers):
        """Rows of the puzzle embedding: int32 [B] -> float32 [B, puzzle_emb_ndim]."""
        if self.puzzle_emb is None:
            raise ValueError("This model has no puzzle embedding (puzzle_emb_ndim == 0).")
        return tf.gather(self.puzzle_emb, tf.cast(puzzle_identifiers, tf.int32))

    def _broadcast(self, init, batch_size):
        v = tf.cast(tf.convert_to_tensor(init), self.compute_dtype_tf)
        return tf.broadcast_to(v[None, None, :], [batch_size, self.total_len, self.hidden_size])

    def initial_carry(self, batch_size) -> dict[str, tf.Tensor]:
        """Every latent of `carry_spec()` = its init vector at every position, [B, total_len, D]."""
        self.build_variables()
        inits = self.recursion.init_vectors(self)
        return {k: self._broadcast(v, batch_size) for k, v in inits.items()}

    def reset_carry(self, reset_mask, carry: dict) -> dict[str, tf.Tensor]:
        """where(reset_mask, the latent's init at every position, carry), per example and latent."""
        mask = tf.reshape(tf.cast(reset_mask, tf.bool), [-1, 1, 1])
        b = tf.shape(reset_mask)[0]
        inits = self.recursion.init_vectors(self)
        return {k: tf.where(mask, self._broadcast(v, b), carry[k]) for k, v in inits.items()}

    # ------------------------------------------------------------------ forward

    def input_embeddings(self, inputs, puzzle_rows=None):
        """[B, total_len, D] in the compute dtype (puzzle prefix, tokens, positions, sqrt(D) scale)."""
        cdt = self.compute_dtype_tf
        x = self.embed_tokens(tf.cast(inputs, tf.int32))
        x = tf.cast(x, cdt)
        if self.puzzle_emb_ndim > 0:
            if puzzle_rows is None:
                raise ValueError("puzzle_rows is required when puzzle_emb_ndim > 0")
            pe = tf.cast(puzzle_rows, cdt)
            pad = self.puzzle_emb_len * self.hidden_size - self.puzzle_emb_ndim
            if pad > 0:
                pe = tf.pad(pe, [[0, 0], [0, pad]])
            pe = tf.reshape(pe, [-1, self.puzzle_emb_len, self.hidden_size])
            x = tf.concat([pe, x], axis=1)
        if self.embed_pos is not None:
            pos = self.embed_pos(tf.range(self.total_len, dtype=tf.int32))
            x = _scale(x + tf.cast(pos, cdt)[None], 0.707106781)
        return _scale(x, self.embed_scale)

    def net(self, h, injection):
        """The shared network `L_level`: blocks(h + injection)."""
        return self.L_level(h, injection, rotary=self.rotary_emb)

    def h_net(self, h, injection):
        """HRM's high-level network `H_level`: blocks(h + injection)."""
        return self.H_level(h, injection, rotary=self.rotary_emb)

    def net_plain(self, h):
        """`L_level` without input injection: blocks(h), not blocks(h + 0)."""
        for block in self.L_level.blocks:
            h = block(h, rotary=self.rotary_emb)
        return h

    def maybe_remat(self, fn):
        """Gradient checkpointing of one network call when `remat` is set."""
        return tf.recompute_grad(fn) if self.remat else fn

    def inner(self, carry: dict, inputs, puzzle_rows=None, training=False, cycles=None) -> dict:
        """One supervision step: embeddings, the recursion, the heads.

        Args:
            carry: dict with every latent of `carry_spec()`, [B, total_len, D] each (cast to the
                compute dtype).
            inputs: int32 [B, seq_len] token ids.
            puzzle_rows: float32 [B, puzzle_emb_ndim] rows from `gather_puzzle_rows` (watched by the
                trainer's tape for the sparse gradient), or None when puzzle_emb_ndim == 0.
            training: unused (no dropout); kept for Keras symmetry.
            cycles: (H_cycles, L_cycles) of this step, or None for the model's defaults. A trace-time
                constant: the recursion is unrolled into the graph (a curriculum traces one function
                per depth).

        Returns:
            dict with `carry` (the new latents, stop_gradient'ed, compute dtype), `logits` float32
            [B, seq_len, V] (prefix dropped), `q_halt`, `q_continue` float32 [B], and `z_H_prev`
            (the state the heads read, entering the with-gradient part, constant) and `z_H_grad`
            (the same state leaving it, with gradient) for the recursion regulariser.
        """
        del training
        self.build_variables()
        h_cycles, l_cycles = self.recursion.resolve_cycles(cycles)
        cdt = self.compute_dtype_tf
        x = self.input_embeddings(inputs, puzzle_rows)
        carry = {k: tf.stop_gradient(tf.cast(carry[k], cdt)) for k in self.recursion.carry_names}
        carry, y_prev, y = self.recursion(self, carry, x, h_cycles, l_cycles)
        logits = self.lm_head(y)[:, self.puzzle_emb_len :]
        q = tf.cast(self.q_head(y[:, 0]), tf.float32)
        return {
            "carry": {k: tf.stop_gradient(v) for k, v in carry.items()},
            "logits": tf.cast(logits, tf.float32),
            "q_halt": q[:, 0],
            "q_continue": q[:, 1],
            "z_H_prev": y_prev,
            "z_H_grad": y,
        }

    def call(self, inputs, training=False):
        """Keras entry point: `inputs` is a dict with the carry latents, `inputs` and
        `puzzle_identifiers`."""
        rows = None
        if self.puzzle_emb_ndim > 0:
            rows = self.gather_puzzle_rows(inputs["puzzle_identifiers"])
        return self.inner(inputs, inputs["inputs"], rows, training=training)

    # ------------------------------------------------------------------ accounting

    def block_flops(self) -> int:
        """Matmul FLOPs of one block for one example: qkv, o, SwiGLU and QK^T / AV, with the
        attention's inner width a = num_heads * (D // num_heads) (a = D when heads divide D)."""
        t, d = self.total_len, self.hidden_size
        i_ch = swiglu_intermediate_size(d, self.expansion)
        if self.mlp_t:
            i_t = swiglu_intermediate_size(t, self.expansion)
            return t * 6 * d * i_ch + d * 6 * t * i_t
        a = self.num_heads * (d // self.num_heads)
        return t * (2 * d * 3 * a + 2 * a * d + 6 * d * i_ch) + 4 * t * t * a

    def flops_per_example(self, train: bool = True, cycles=None) -> int:
        """Matmul FLOPs per example of one supervision step.

        Forward = the recursion's block applications + heads (lm_head on all positions, q_head).
        With train=True adds the backward, 2x the with-gradient part (its blocks and the heads).
        """
        heads = 2 * self.total_len * self.hidden_size * self.vocab_size + 4 * self.hidden_size
        n_fwd, n_grad = self.recursion.block_calls(self, *self.recursion.resolve_cycles(cycles))
        blk = self.block_flops()
        fwd = n_fwd * blk + heads
        if not train:
            return int(fwd)
        return int(fwd + 2 * (n_grad * blk + heads))
