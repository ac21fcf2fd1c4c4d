"""A tiny random llama GGUF (byte-level tokenizer, 2 layers) for conversion/cache tests.

Written with the ``gguf`` package in well under a second, so the convert-and-cache
path runs for real in tests without the 100 MB bundled file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] "
    "+ '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _byte_tokens() -> list[str]:
    # GPT-2's byte-to-unicode table: every byte is one printable token.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs, strict=True))
    return [chr(table[b]) for b in range(256)]


def write_tiny_gguf(path: Path, seed: int = 0, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Write the tiny model to ``path`` (a ``.gguf`` file) and return it.

    ``chat_template=None`` makes a "base" model: no template in the file.
    """
    import gguf

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_tokens(), "Ġt", "he"]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    merges = ["Ġ t", "h e"]
    vocab, dim, ff, heads, kv_heads, layers = len(tokens), 16, 32, 2, 1, 2
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-llama")
    writer.add_block_count(layers)
    writer.add_context_length(256)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_rope_dimension_count(dim // heads)
    writer.add_file_type(0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", w(vocab, dim))
    writer.add_tensor("output_norm.weight", np.ones(dim, dtype=np.float32))
    writer.add_tensor("output.weight", w(vocab, dim))
    head = dim // heads
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(dim, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(dim, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", w(dim, dim))
        writer.add_tensor(f"blk.{i}.attn_k.weight", w(kv_heads * head, dim))
        writer.add_tensor(f"blk.{i}.attn_v.weight", w(kv_heads * head, dim))
        writer.add_tensor(f"blk.{i}.attn_output.weight", w(dim, dim))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", w(ff, dim))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", w(ff, dim))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", w(dim, ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
