"""Fast 4×4 stride-2 convolutions and transposed convolutions for XLA:CPU.

The β-VAE of Burgess et al. (2018) uses only one kind of spatial layer: a 4×4
kernel with stride 2, halving the image in the encoder and doubling it in the
decoder. On XLA:CPU the straightforward lowering of these layers is slow: a
stride-2 transposed convolution, and the input/kernel gradients of a stride-2
convolution, become *dilated* convolutions that run 5–20× slower than stride-1
convolutions doing the same arithmetic. This module computes the same functions
from stride-1 pieces whose gradients are stride-1 too.

Each formulation ("implementation", selected by name) is a pure function of
`(inputs, kernel)`; the two linen modules `StridedConv` and
`StridedConvTranspose` own the parameters, named and shaped exactly as
`flax.linen.Conv` / `flax.linen.ConvTranspose` name and shape them (`kernel`
of shape (4, 4, C_in, C_out), `bias` of shape (C_out,), Flax's default
initialisers). The parameter tree is therefore the same whatever the
implementation, and checkpoints are interchangeable between them.

Every non-reference implementation reduces the layer to one stride-1 2×2
correlation (derivations below): VALID on the space-to-depth view of the
padded input for the convolution, FULL (input zero-padded by 1) for the
transposed convolution. They differ only in how they compute it:
  * `'lax'`: no reduction; `lax.conv_general_dilated` / `lax.conv_transpose`.
    The reference.
  * `'space_to_depth'`: the 2×2 correlation with `lax.conv_general_dilated`.
  * `'im2col'`: gather the four shifted windows of the input into patches
    with 4·C_in channels, then one matmul.
  * `'col2im'`: one matmul producing all four taps' products (4·C_out
    channels) per input pixel, then a sum of the four shifted taps.
  * `'matmul'`: per layer, whichever of im2col and col2im materialises the
    smaller intermediate (patches: 4·C_in channels, products: 4·C_out).
    The default.

The window gather and the shifted sum carry hand-written VJPs (each is the
other's adjoint up to swapping slices and pads), so that the backward pass is
one gather per layer too, not one padded copy per window. On this machine
XLA:CPU matmuls are fast; what separates formulations is memory traffic.

Derivations (one spatial axis; the two axes are independent):

Strided convolution, padding 1 each side (`padding='SAME'` for even sizes):
  out[i] = Σ_k x_pad[2i + k] · W[k],  k ∈ 0..3.
  Write k = 2a + d with a, d ∈ {0, 1}: out[i] = Σ_a Σ_d x_pad[2(i + a) + d] W[2a + d].
  With the space-to-depth view S[p, d] = x_pad[2p + d], this is
  out[i] = Σ_a S[i + a, d] · W'[a, d], a 2-tap stride-1 VALID correlation whose
  input channels are (d, c) and whose kernel is W' = W reshaped (a, d).

Strided transposed convolution with `lax.conv_transpose(..., strides=2,
padding=((2, 2),))`: this dilates x by 2 (x_dil[2i] = x[i], zeros between),
pads by 2 and correlates with the (unflipped) kernel:
  out[o] = Σ_k x_dil_pad[o + k] · W[k], which is non-zero only for o + k even.
  For o = 2m + r (phase r ∈ {0, 1}) the contributing taps are k = 2t + r,
  t ∈ {0, 1}, reading x[m + t + r - 1]. With x_pad[j] = x[j - 1] (pad 1):
  out[2m + r] = Σ_t x_pad[m + r + t] · W[2t + r] = Z[m + r, r],
  where Z = (2-tap stride-1 VALID correlation of x_pad, i.e. FULL correlation
  of x, output channels (r, c), taps W[2t + r]), of length H + 1. Interleaving the phases is a
  depth-to-space: with the phases stored swapped, Z'[p, d] = Z[p, 1 - d],
  D = depth_to_space(Z') has D[2p + d] = Z[p, 1 - d], so out[u] = D[u + 1],
  the centre crop of D.
"""

from collections.abc import Callable
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from bvae_jax import config_defaults

KERNEL_SIZE = 4  # Every spatial layer of the Burgess et al. architecture is 4×4...
STRIDE = 2  # ...with stride 2.

_NHWC_HWIO_NHWC = ('NHWC', 'HWIO', 'NHWC')

Correlation2x2 = Callable[[jax.Array, jax.Array, bool], jax.Array]


def _check_strided_conv_operands(inputs: jax.Array, kernel: jax.Array) -> None:
  """Raises ValueError unless the operands fit a 4×4 stride-2 layer."""
  if inputs.ndim != 4:
    raise ValueError(f'Expected NHWC inputs, got shape {inputs.shape}.')
  if kernel.ndim != 4 or kernel.shape[:2] != (KERNEL_SIZE, KERNEL_SIZE):
    raise ValueError(f'Expected a (4, 4, C_in, C_out) kernel, got {kernel.shape}.')
  if kernel.shape[2] != inputs.shape[3]:
    raise ValueError(
        f'Kernel expects {kernel.shape[2]} input channels, inputs have '
        f'{inputs.shape[3]}.')


def _pad_spatial(inputs: jax.Array, amount: int) -> jax.Array:
  """Zero-pads axes 1 and 2 (height, width) by `amount` on each side."""
  pads = [(0, 0)] * inputs.ndim
  pads[1] = pads[2] = (amount, amount)
  return jnp.pad(inputs, pads)


def space_to_depth(inputs: jax.Array) -> jax.Array:
  """Folds each 2×2 spatial block into channels.

  Args:
    inputs: (N, H, W, C) with H and W even.

  Returns:
    (N, H/2, W/2, 4·C) array `s` with s[n, p, q, (dh, dw, c)] =
    inputs[n, 2p + dh, 2q + dw, c], channels ordered (dh, dw, c).
  """
  batch, height, width, channels = inputs.shape
  if height % 2 or width % 2:
    raise ValueError(f'space_to_depth needs even H and W, got {inputs.shape}.')
  blocks = inputs.reshape(batch, height // 2, 2, width // 2, 2, channels)
  blocks = blocks.transpose(0, 1, 3, 2, 4, 5)
  return blocks.reshape(batch, height // 2, width // 2, 4 * channels)


def depth_to_space(inputs: jax.Array) -> jax.Array:
  """Inverse of `space_to_depth`: (N, H, W, 4·C) → (N, 2H, 2W, C)."""
  batch, height, width, channels = inputs.shape
  blocks = inputs.reshape(batch, height, width, 2, 2, channels // 4)
  blocks = blocks.transpose(0, 1, 3, 2, 4, 5)
  return blocks.reshape(batch, 2 * height, 2 * width, channels // 4)


_SHIFTS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (a, b) in the order of axes (3, 4).


def _stack_shifts(parts: list[jax.Array]) -> jax.Array:
  """Stacks four (N, H, W, ...) arrays ordered as `_SHIFTS` into (N, H, W, 2, 2, ...)."""
  stacked = jnp.stack(parts, axis=3)  # One concatenation: one pass over memory.
  return stacked.reshape(stacked.shape[:3] + (2, 2) + stacked.shape[4:])


def _slice_from(inputs: jax.Array, row: int, col: int) -> jax.Array:
  """The (H-1)×(W-1) window of an (N, H, W, ...) array starting at (row, col)."""
  return inputs[:, row:row + inputs.shape[1] - 1, col:col + inputs.shape[2] - 1]


def _pad_shifted(inputs: jax.Array, row: int, col: int) -> jax.Array:
  """Zero-pads (N, H, W, ...) to (N, H+1, W+1, ...) with out[p, q] = inputs[p - row, q - col]."""
  pads = [(0, 0)] * inputs.ndim
  pads[1], pads[2] = (row, 1 - row), (col, 1 - col)
  return jnp.pad(inputs, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def shifted_windows(inputs: jax.Array, full: bool) -> jax.Array:
  """The four 2×2-shifted windows of an image, stacked.

  VALID: (N, H+1, W+1, ...) → (N, H, W, 2, 2, ...), out[:, i, j, a, b] =
  inputs[:, i + a, j + b]. FULL: (N, H, W, ...) → (N, H+1, W+1, 2, 2, ...), the
  same on the input zero-padded by 1, i.e. inputs[:, i + a - 1, j + b - 1].
  """
  if full:
    return _stack_shifts([_pad_shifted(inputs, 1 - a, 1 - b) for a, b in _SHIFTS])
  return _stack_shifts([_slice_from(inputs, a, b) for a, b in _SHIFTS])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def shifted_sum(shifted: jax.Array, full: bool) -> jax.Array:
  """Sums the four shifted taps: out[:, i, j] = Σ_{a,b} shifted[:, i + a, j + b, a, b].

  VALID: (N, H+1, W+1, 2, 2, ...) → (N, H, W, ...). FULL: (N, H, W, 2, 2, ...)
  → (N, H+1, W+1, ...), reading `shifted` zero-padded by 1 (index i + a - 1).
  """
  if full:
    return sum(_pad_shifted(shifted[:, :, :, a, b], 1 - a, 1 - b)
               for a, b in _SHIFTS)
  return sum(_slice_from(shifted[:, :, :, a, b], a, b) for a, b in _SHIFTS)


# The adjoints swap slicing and padding: window (a, b) reads offset o and its
# cotangent goes back to offset o. Written by hand, every backward pass is a
# single gather (slices or pads); autodiff of the forward would instead pad one
# full-size copy per window, and XLA:CPU materialises each of them.
def _windows_adjoint(full, _, cotangent):
  if full:
    return (sum(_slice_from(cotangent[:, :, :, a, b], 1 - a, 1 - b)
                for a, b in _SHIFTS),)
  return (sum(_pad_shifted(cotangent[:, :, :, a, b], a, b) for a, b in _SHIFTS),)


def _sum_adjoint(full, _, cotangent):
  if full:
    return (_stack_shifts([_slice_from(cotangent, 1 - a, 1 - b)
                           for a, b in _SHIFTS]),)
  return (_stack_shifts([_pad_shifted(cotangent, a, b) for a, b in _SHIFTS]),)


shifted_windows.defvjp(
    lambda inputs, full: (shifted_windows(inputs, full), None), _windows_adjoint)
shifted_sum.defvjp(
    lambda shifted, full: (shifted_sum(shifted, full), None), _sum_adjoint)


def _matmul_channels(inputs: jax.Array, weights: jax.Array) -> jax.Array:
  """Contracts the channel (last) axis of `inputs` with rows of `weights`.

  The pixels are flattened into one matrix dimension first. A dot_general over
  the 4-D or 6-D array computes the same, but its autodiff kernel gradient
  contracts over (N, H, W) at once, which XLA:CPU lowers with extra transposed
  copies; in 2-D, every gradient is a plain matmul (the step is ~20% faster).
  """
  flat = inputs.reshape(-1, inputs.shape[-1])
  return (flat @ weights).reshape(inputs.shape[:-1] + (weights.shape[-1],))


# 2×2 stride-1 correlations, (N, H, W, Ci) × (2, 2, Ci, Co): VALID gives
# (N, H-1, W-1, Co); FULL correlates the input zero-padded by 1 and gives
# (N, H+1, W+1, Co).


def correlate_2x2_lax(inputs: jax.Array, kernel_2x2: jax.Array,
                      full: bool) -> jax.Array:
  """The 2×2 correlation with `lax.conv_general_dilated`."""
  return lax.conv_general_dilated(
      inputs, kernel_2x2, window_strides=(1, 1),
      padding=((1, 1), (1, 1)) if full else 'VALID',
      dimension_numbers=_NHWC_HWIO_NHWC)


def correlate_2x2_im2col(inputs: jax.Array, kernel_2x2: jax.Array,
                         full: bool) -> jax.Array:
  """The 2×2 correlation as patches with 4·Ci channels, then one matmul."""
  windows = shifted_windows(inputs, full)
  patches = windows.reshape(windows.shape[:3] + (-1,))  # channels (a, b, c)
  return _matmul_channels(patches, kernel_2x2.reshape(patches.shape[-1], -1))


def correlate_2x2_col2im(inputs: jax.Array, kernel_2x2: jax.Array,
                         full: bool) -> jax.Array:
  """The 2×2 correlation as one matmul giving every tap's product (4·Co
  channels) at each input pixel, then a sum of the four shifted taps."""
  in_channels, out_channels = kernel_2x2.shape[2:]
  all_taps = kernel_2x2.transpose(2, 0, 1, 3).reshape(in_channels,
                                                      4 * out_channels)
  products = _matmul_channels(inputs, all_taps)
  return shifted_sum(
      products.reshape(products.shape[:3] + (2, 2, out_channels)), full)


def correlate_2x2_matmul(inputs: jax.Array, kernel_2x2: jax.Array,
                         full: bool) -> jax.Array:
  """im2col or col2im, whichever materialises fewer channels per pixel."""
  in_channels, out_channels = kernel_2x2.shape[2:]
  if in_channels <= out_channels:
    return correlate_2x2_im2col(inputs, kernel_2x2, full)
  return correlate_2x2_col2im(inputs, kernel_2x2, full)


def _conv_kernel_as_2x2(kernel: jax.Array) -> jax.Array:
  """Rearranges a (4,4,Ci,Co) stride-2 kernel into the (2,2,4·Ci,Co) kernel
  that acts on the space-to-depth view: W[2a + d] goes to tap a, channel (d, ·)."""
  in_channels, out_channels = kernel.shape[2:]
  taps = kernel.reshape(2, 2, 2, 2, in_channels, out_channels)  # (ah, dh, aw, dw, ci, co)
  taps = taps.transpose(0, 2, 1, 3, 4, 5)  # (ah, aw, dh, dw, ci, co)
  return taps.reshape(2, 2, 4 * in_channels, out_channels)


def _transpose_kernel_as_2x2(kernel: jax.Array) -> jax.Array:
  """Rearranges a (4,4,Ci,Co) transposed-conv kernel into the (2,2,Ci,4·Co)
  kernel computing all four output phases: phase r's tap t is W[2t + r].

  Output channels are ordered (1 - rh, 1 - rw, co), phases swapped, which is
  the order `_interleave_phases` consumes (swapping the tiny kernel here
  saves swapping the large activations there).
  """
  in_channels, out_channels = kernel.shape[2:]
  taps = kernel.reshape(2, 2, 2, 2, in_channels, out_channels)  # (th, rh, tw, rw, ci, co)
  taps = taps[:, ::-1, :, ::-1]  # phase r → 1 - r
  taps = taps.transpose(0, 2, 4, 1, 3, 5)  # (th, tw, ci, 1 - rh, 1 - rw, co)
  return taps.reshape(2, 2, in_channels, 4 * out_channels)


def _interleave_phases(phase_maps: jax.Array) -> jax.Array:
  """Assembles the transposed-conv output from the per-phase correlations.

  Args:
    phase_maps: (N, H+1, W+1, 4·C) correlations Z, channels ordered
      (1 - rh, 1 - rw, c) (see `_transpose_kernel_as_2x2`).

  Returns:
    (N, 2H, 2W, C) output with out[2m + rh, 2n + rw] = Z[m + rh, n + rw, phase
    (rh, rw)]: the centre crop of the depth-to-space of Z.
  """
  return depth_to_space(phase_maps)[:, 1:-1, 1:-1, :]


def strided_conv_lax(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
  """Reference 4×4 stride-2 convolution, padding 1 (PyTorch Conv2d(·,·,4,2,1))."""
  _check_strided_conv_operands(inputs, kernel)
  return lax.conv_general_dilated(
      inputs, kernel, window_strides=(STRIDE, STRIDE),
      padding=((1, 1), (1, 1)), dimension_numbers=_NHWC_HWIO_NHWC)


def strided_conv_transpose_lax(inputs: jax.Array,
                               kernel: jax.Array) -> jax.Array:
  """Reference 4×4 stride-2 transposed convolution (flax 'SAME': output 2×)."""
  _check_strided_conv_operands(inputs, kernel)
  return lax.conv_transpose(
      inputs, kernel, strides=(STRIDE, STRIDE), padding=((2, 2), (2, 2)),
      dimension_numbers=_NHWC_HWIO_NHWC)


def _make_strided_conv(correlate_2x2: Correlation2x2):
  """Builds a strided conv from a stride-1 2×2 VALID correlation routine."""

  def strided_conv(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
    _check_strided_conv_operands(inputs, kernel)
    if inputs.shape[1] % 2 or inputs.shape[2] % 2:
      raise ValueError(f'Strided conv needs even H and W, got {inputs.shape}.')
    blocks = space_to_depth(_pad_spatial(inputs, 1))
    return correlate_2x2(blocks, _conv_kernel_as_2x2(kernel), full=False)

  return strided_conv


def _make_strided_conv_transpose(correlate_2x2: Correlation2x2):
  """Builds a strided transposed conv from a stride-1 2×2 VALID correlation."""

  def strided_conv_transpose(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
    _check_strided_conv_operands(inputs, kernel)
    # The padding of the derivation, x_pad, is the FULL correlation's.
    phase_maps = correlate_2x2(inputs, _transpose_kernel_as_2x2(kernel),
                               full=True)
    return _interleave_phases(phase_maps)

  return strided_conv_transpose


_CORRELATIONS_2X2 = {
    'space_to_depth': correlate_2x2_lax,
    'im2col': correlate_2x2_im2col,
    'col2im': correlate_2x2_col2im,
    'matmul': correlate_2x2_matmul,
}
STRIDED_CONV_IMPLS = {'lax': strided_conv_lax} | {
    name: _make_strided_conv(correlate)
    for name, correlate in _CORRELATIONS_2X2.items()
}
STRIDED_CONV_TRANSPOSE_IMPLS = {'lax': strided_conv_transpose_lax} | {
    name: _make_strided_conv_transpose(correlate)
    for name, correlate in _CORRELATIONS_2X2.items()
}
CONV_IMPLS = tuple(STRIDED_CONV_IMPLS)
# The formulation training uses; configs name it too (config_defaults).
DEFAULT_CONV_IMPL = config_defaults.DEFAULT_CONV_IMPL


def _lookup_impl(table: dict[str, Callable], impl: str) -> Callable:
  if impl not in table:
    raise ValueError(f'Unknown conv_impl {impl!r}; choose one of {tuple(table)}.')
  return table[impl]


class StridedConv(nn.Module):
  """4×4 stride-2 convolution with padding 1, halving height and width.

  Computes the same function, with the same parameters, as
  `nn.Conv(features, (4, 4), (2, 2), padding='SAME')` on even-sized inputs.

  Attributes:
    features: number of output channels.
    impl: which formulation computes it, one of `CONV_IMPLS`.
  """
  features: int
  impl: str = DEFAULT_CONV_IMPL

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    conv = _lookup_impl(STRIDED_CONV_IMPLS, self.impl)
    kernel_shape = (KERNEL_SIZE, KERNEL_SIZE, inputs.shape[-1], self.features)
    # Same names, shapes and initialisers as nn.Conv, so parameters and
    # checkpoints carry over between implementations and to nn.Conv.
    kernel = self.param('kernel', nn.linear.default_kernel_init, kernel_shape)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv(inputs, kernel) + bias


class StridedConvTranspose(nn.Module):
  """4×4 stride-2 transposed convolution, doubling height and width.

  Computes the same function, with the same parameters, as
  `nn.ConvTranspose(features, (4, 4), (2, 2), padding='SAME')`.

  Attributes:
    features: number of output channels.
    impl: which formulation computes it, one of `CONV_IMPLS`.
  """
  features: int
  impl: str = DEFAULT_CONV_IMPL

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    conv_transpose = _lookup_impl(STRIDED_CONV_TRANSPOSE_IMPLS, self.impl)
    kernel_shape = (KERNEL_SIZE, KERNEL_SIZE, inputs.shape[-1], self.features)
    kernel = self.param('kernel', nn.linear.default_kernel_init, kernel_shape)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv_transpose(inputs, kernel) + bias
