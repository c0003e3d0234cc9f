r"""Training-step throughput of the same β-VAE in PyTorch, eager or compiled.

Same architecture (Burgess et al. 2018, appendix A.1), loss (Bernoulli NLL
summed over pixels and averaged over the batch, plus the analytic KL to
N(0, I)), optimizer (Adam, 5e-4), batch and float32 as
`benchmarks/conv_formulations.py`, with PyTorch's default intra-op threads
(all cores). PyTorch is not a dependency of bvae_jax; install it only to run
this file:

  pip install torch  # measured with 2.14.1 (docs/benchmarks.md)
  python -m benchmarks.torch_train_step --seconds 10 --rounds 3
  python -m benchmarks.torch_train_step --seconds 10 --rounds 3 --compile

--compile runs the model (encoder, sampling, decoder) and the loss through
`torch.compile` (TorchInductor, PyTorch's default backend), forward and
backward; Adam's update stays eager, as PyTorch users usually leave it. The
first (compiling) step is not timed.

The last line printed is JSON: {"images_per_sec", "batch_size", "device", ...}.
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

LEARNING_RATE = 5e-4
WARMUP_SECONDS = 2.0  # oneDNN picks and caches kernels over the first steps.
IMAGE_SIZE = 64
CONV_CHANNELS = 32
HIDDEN_UNITS = 256


class TorchVAE(nn.Module):
  """The Burgess et al. encoder/decoder, NCHW, outputs Bernoulli logits."""

  def __init__(self, latent_dim: int, num_channels: int):
    super().__init__()
    self.latent_dim = latent_dim
    self.encoder = nn.Sequential(
        nn.Conv2d(num_channels, CONV_CHANNELS, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, 4, 2, 1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * CONV_CHANNELS, HIDDEN_UNITS), nn.ReLU(),
        nn.Linear(HIDDEN_UNITS, HIDDEN_UNITS), nn.ReLU(),
        nn.Linear(HIDDEN_UNITS, 2 * latent_dim))
    self.decoder = nn.Sequential(
        nn.Linear(latent_dim, HIDDEN_UNITS), nn.ReLU(),
        nn.Linear(HIDDEN_UNITS, HIDDEN_UNITS), nn.ReLU(),
        nn.Linear(HIDDEN_UNITS, 4 * 4 * CONV_CHANNELS), nn.ReLU(),
        nn.Unflatten(1, (CONV_CHANNELS, 4, 4)),
        nn.ConvTranspose2d(CONV_CHANNELS, CONV_CHANNELS, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(CONV_CHANNELS, CONV_CHANNELS, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(CONV_CHANNELS, CONV_CHANNELS, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(CONV_CHANNELS, num_channels, 4, 2, 1))

  def forward(self, images):
    mean, log_var = self.encoder(images).chunk(2, dim=1)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    return self.decoder(z), mean, log_var


def negative_elbo(model, images):
  logits, mean, log_var = model(images)
  reconstruction = F.binary_cross_entropy_with_logits(
      logits, images, reduction='sum') / images.shape[0]
  kl = 0.5 * (log_var.exp() + mean.square() - 1.0 - log_var)
  return reconstruction + kl.sum(dim=1).mean()


def time_train_step(batch_size: int, num_channels: int, seconds: float,
                    compile_model: bool = False) -> float:
  """Returns images/s of the training step after a short warm-up.

  Args:
    batch_size: images per step.
    num_channels: image channels.
    seconds: timed duration.
    compile_model: run the model and loss through torch.compile.
  """
  torch.manual_seed(0)
  model = TorchVAE(latent_dim=10, num_channels=num_channels)
  optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
  images = (torch.rand(batch_size, num_channels, IMAGE_SIZE, IMAGE_SIZE)
            < 0.1).float()
  loss_fn = (torch.compile(negative_elbo) if compile_model
             else negative_elbo)

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model, images)
    loss.backward()
    optimizer.step()
    return loss

  loss = step()  # Compiles, with --compile.
  warmup_start = time.perf_counter()
  while time.perf_counter() - warmup_start < WARMUP_SECONDS:
    loss = step()
  if not torch.isfinite(loss):
    raise FloatingPointError(f'Non-finite loss {loss.item()}.')
  steps = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    step()
    steps += 1
  return steps * batch_size / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--num_channels', type=int, default=1)
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--compile', action='store_true',
                      help='torch.compile the model and loss (inductor).')
  args = parser.parse_args()

  rates = []
  for round_index in range(args.rounds):
    rates.append(time_train_step(args.batch_size, args.num_channels,
                                 args.seconds, compile_model=args.compile))
    print(f'round {round_index}: {rates[-1]:8.1f} images/s', flush=True)
  print(json.dumps({'images_per_sec': round(statistics.median(rates), 1),
                    'batch_size': args.batch_size,
                    'device': f'cpu ({torch.get_num_threads()} threads)',
                    'compiled': args.compile,
                    'num_channels': args.num_channels,
                    'all_rounds': [round(rate, 1) for rate in rates],
                    'torch_version': torch.__version__}))


if __name__ == '__main__':
  main()
