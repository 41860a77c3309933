"""Fused kernels, registered as `torch.ops.tinygpt.*` (CPU kernels, and CUDA kernels in CUDA
builds), with autograd and fake (meta) implementations so they work with `torch.compile`.
`tinygpt.ops.reference` has the plain PyTorch version of each, with the same signature; on CUDA
tensors the functions here use it unless the CUDA kernels are enabled (`tinygpt.ops.cuda`)."""

from tinygpt.ops import reference  # noqa: F401
from tinygpt.ops.attention import attention  # noqa: F401
from tinygpt.ops.cross_entropy import cross_entropy  # noqa: F401
from tinygpt.ops.decode_attention import decode_attention  # noqa: F401
from tinygpt.ops.rms_norm import rms_norm  # noqa: F401
from tinygpt.ops.rope import rope  # noqa: F401
from tinygpt.ops.sample import sample, sample_probs, sample_with_uniform  # noqa: F401
from tinygpt.ops.swiglu import swiglu  # noqa: F401
