"""The fast audio-encoder path: encode only the mel frames a batch needs, not 30 s of them.

The standard Qwen2-Audio encoder insists on 3000 mel frames (1500 positions after its
stride-2 convolution) for every clip, and masks the padding out of self-attention as keys.
An output token of a clip with L real frames therefore depends only on:

- conv2 positions below F = (L-1)//2+1 (the attention mask hides the rest as keys, and the
  stride-2 average pool only pairs positions below F),
- conv1 positions up to 2F-1 <= L, hence mel frames up to L+1 (conv1 has kernel 3),
- mel frames whose values do not depend on the padded length: the padding is zeros, whose
  log-mel is the floor, and the per-clip maximum used for clamping lies in the signal.

So computing ``frames_needed`` = L_max+2 frames (rounded up to a multiple of 8), adding the
first frames/2 position embeddings, and running the same layers with the same mask gives the
same outputs up to floating-point reordering. The rest (projector, text model, head) is the
model's own code, fed with inputs_embeds.
"""

from __future__ import annotations

from qsm_eval.backends.audio_llm.presentation import MAX_FRAMES

_FRAME_MULTIPLE = 8


def frames_needed(max_clip_frames: int) -> int:
    """Mel frames to compute for a batch whose longest clip has ``max_clip_frames`` frames."""
    needed = max_clip_frames + 2
    needed = -(-needed // _FRAME_MULTIPLE) * _FRAME_MULTIPLE
    return min(needed, MAX_FRAMES)


def encode_audio(model, input_features, feature_attention_mask, *, fast: bool = True):
    """Projected audio features of every clip's real tokens, concatenated in batch order.

    ``fast=False`` runs the encoder's own forward on the full 3000 frames (what
    transformers does inside the model); ``fast=True`` runs the same layers on the frames given.
    """
    import torch
    from torch import nn
    from transformers.masking_utils import create_bidirectional_mask

    tower = model.model.audio_tower
    weight = tower.conv1.weight
    features = input_features.to(dtype=weight.dtype, device=weight.device)
    frame_lengths = feature_attention_mask.to(weight.device).sum(-1)
    conv_lengths, token_lengths = tower._get_feat_extract_output_lengths(frame_lengths)
    positions = (features.shape[-1] - 1) // 2 + 1
    keep = torch.arange(positions, device=weight.device)[None, :] < conv_lengths[:, None]
    # Padded positions are hidden as keys, as in transformers' own call of the encoder.
    shape_only = features.new_zeros(len(features), positions, 1)
    mask = create_bidirectional_mask(config=tower.config, inputs_embeds=shape_only, attention_mask=keep.long())
    if fast:
        hidden = nn.functional.gelu(tower.conv1(features))
        hidden = nn.functional.gelu(tower.conv2(hidden)).permute(0, 2, 1)
        hidden = hidden + tower.embed_positions.weight[:positions]
        for layer in tower.layers:
            hidden = layer(hidden, mask)
        hidden = tower.avg_pooler(hidden.permute(0, 2, 1)).permute(0, 2, 1)
        hidden = tower.layer_norm(hidden)
    else:
        hidden = tower(features, attention_mask=mask).last_hidden_state
    projected = model.model.multi_modal_projector(hidden)

    valid = torch.arange(projected.shape[1], device=weight.device)[None, :] < token_lengths[:, None]
    return projected[valid]


def embed_inputs(model, input_ids, input_features, feature_attention_mask, *, fast: bool = True):
    """Text embeddings with each clip's audio features written over its <|AUDIO|> tokens."""
    embeds = model.get_input_embeddings()(input_ids)
    audio = encode_audio(model, input_features, feature_attention_mask, fast=fast)
    slots = (input_ids == model.config.audio_token_id).unsqueeze(-1).to(embeds.device)
    if int(slots.sum()) != audio.shape[0]:
        raise RuntimeError(f"{int(slots.sum())} audio slots in the text but {audio.shape[0]} "
                           f"audio features: inputs and encoder disagree")
    return embeds.masked_scatter(slots, audio.to(embeds.device, embeds.dtype))
